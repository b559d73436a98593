// Starts Swagger UI on the document this server generates. validatorUrl: null keeps it from
// sending the document to an outside validator: the page needs no network beyond this server.
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
  });
});
