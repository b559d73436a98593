//! Percentiles, medians of runs, rates and time series.

use std::time::Instant;

use serde::Serialize;

/// The `p`-th percentile (0–100) of `sorted` (ascending), by nearest rank; `None` if empty.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let p = p.clamp(0.0, 100.0);
    // Nearest rank: the smallest value with at least p% of the values at or below it.
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Sorts `values` ascending (NaNs last).
pub fn sorted(mut values: Vec<f64>) -> Vec<f64> {
    values.sort_by(f64::total_cmp);
    values
}

/// Latency percentiles, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Latencies {
    /// Samples.
    pub count: usize,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

impl Latencies {
    /// The percentiles of `samples_ms`; `None` if there are none.
    pub fn of(samples_ms: Vec<f64>) -> Option<Self> {
        let sorted = sorted(samples_ms);
        Some(Self {
            count: sorted.len(),
            p50: percentile(&sorted, 50.0)?,
            p95: percentile(&sorted, 95.0)?,
            p99: percentile(&sorted, 99.0)?,
            max: *sorted.last()?,
        })
    }
}

/// Median, smallest and largest of the figures of several runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Spread {
    /// The median (the mean of the middle two for an even count).
    pub median: f64,
    /// The smallest.
    pub min: f64,
    /// The largest.
    pub max: f64,
    /// Every run's figure, in run order.
    pub values: Vec<f64>,
}

impl Spread {
    /// The spread of `values`; `None` if there are none (or only NaNs).
    pub fn of(values: &[f64]) -> Option<Self> {
        let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        let sorted = sorted(finite);
        let n = sorted.len();
        if n == 0 {
            return None;
        }
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
        Some(Self {
            median,
            min: sorted[0],
            max: sorted[n - 1],
            values: values.to_vec(),
        })
    }
}

/// Events per second from the first to the last of `instants` (sorted): `(n - 1) / span`.
/// `None` for fewer than two, or a zero span.
pub fn rate_between(first: Instant, last: Instant, count: usize) -> Option<f64> {
    let span = last.checked_duration_since(first)?.as_secs_f64();
    if count < 2 || span <= 0.0 {
        return None;
    }
    Some((count - 1) as f64 / span)
}

/// Events per second in consecutive bins of `bin_secs`, from `origin`: `(bin start s, rate)`.
/// The last bin, cut short by the last event, is left out (unless it is the only one).
pub fn time_series(origin: Instant, instants: &[Instant], bin_secs: f64) -> Vec<(f64, f64)> {
    if instants.is_empty() || bin_secs <= 0.0 {
        return Vec::new();
    }
    let offsets: Vec<f64> = instants
        .iter()
        .map(|at| at.saturating_duration_since(origin).as_secs_f64())
        .collect();
    let last = offsets.iter().copied().fold(0.0, f64::max);
    let bins = (last / bin_secs).floor() as usize + 1;
    let mut counts = vec![0u64; bins];
    for offset in offsets {
        let bin = ((offset / bin_secs).floor() as usize).min(bins - 1);
        counts[bin] += 1;
    }
    if counts.len() > 1 {
        counts.pop();
    }
    counts
        .into_iter()
        .enumerate()
        .map(|(i, count)| (i as f64 * bin_secs, count as f64 / bin_secs))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let values = sorted((1..=100).rev().map(f64::from).collect());
        assert_eq!(percentile(&values, 50.0), Some(50.0));
        assert_eq!(percentile(&values, 95.0), Some(95.0));
        assert_eq!(percentile(&values, 99.0), Some(99.0));
        assert_eq!(percentile(&values, 100.0), Some(100.0));
        assert_eq!(percentile(&values, 0.0), Some(1.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
        // Ten values: p95 is the 10th, p50 the 5th.
        let ten = sorted((1..=10).map(f64::from).collect());
        assert_eq!(percentile(&ten, 50.0), Some(5.0));
        assert_eq!(percentile(&ten, 95.0), Some(10.0));
    }

    #[test]
    fn latencies_summarise_samples() {
        let latencies = Latencies::of(vec![3.0, 1.0, 2.0, 10.0]).expect("samples");
        assert_eq!(latencies.count, 4);
        assert_eq!(latencies.p50, 2.0);
        assert_eq!(latencies.p99, 10.0);
        assert_eq!(latencies.max, 10.0);
        assert!(Latencies::of(Vec::new()).is_none());
    }

    #[test]
    fn spreads_give_median_min_and_max() {
        let odd = Spread::of(&[3.0, 1.0, 2.0]).expect("values");
        assert_eq!((odd.median, odd.min, odd.max), (2.0, 1.0, 3.0));
        assert_eq!(odd.values, vec![3.0, 1.0, 2.0]);
        let even = Spread::of(&[4.0, 1.0, 2.0, 10.0]).expect("values");
        assert_eq!(even.median, 3.0);
        assert!(Spread::of(&[f64::NAN]).is_none());
    }

    #[test]
    fn rates_and_series_count_per_second() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        assert_eq!(rate_between(at(0), at(1000), 101), Some(100.0));
        assert_eq!(rate_between(at(0), at(0), 5), None);
        let series = time_series(t0, &[at(10), at(20), at(150), at(399)], 0.1);
        assert_eq!(series.len(), 3, "the partial last bin is left out");
        assert_eq!(series[0], (0.0, 20.0));
        assert_eq!(series[1].1, 10.0);
        assert_eq!(series[2].1, 0.0);
        assert_eq!(time_series(t0, &[at(10)], 0.1), vec![(0.0, 10.0)]);
    }
}
