//! Mergeable log-linear histograms (the scheme of HdrHistogram with 5 significant bits): values
//! below 64 each have a bucket of their own; above, every power of two is cut into 32 buckets
//! of equal width. A bucket `[low, low + width)` has `width <= low / 32`, so its midpoint is
//! within `1/64` (1.6 %) of any value in it: a percentile read from the buckets is within 1.6 %
//! of the exact one. Buckets are plain counts, so histograms of hours, users or workflows merge
//! by adding them (the analytics aggregates store one attribute per non-empty bucket and `ADD`
//! to it).

use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// Buckets per power of two above [`EXACT_BELOW`].
const SUB_BUCKETS: u64 = 32;
/// Values below this are their own bucket.
const EXACT_BELOW: u64 = 2 * SUB_BUCKETS;

/// The bucket of `v`.
pub fn bucket_of(v: u64) -> u32 {
    if v < EXACT_BELOW {
        return v as u32;
    }
    // v >= 64: its top bit is e >= 6; keep the 5 bits below it (plus the top one).
    let e = 63 - v.leading_zeros() as u64;
    let shift = e - 5;
    let mantissa = v >> shift; // 32..=63
    ((e - 4) * SUB_BUCKETS + (mantissa - SUB_BUCKETS)) as u32
}

/// The smallest value of bucket `index` and the bucket's width.
pub fn bucket_bounds(index: u32) -> (u64, u64) {
    let index = index as u64;
    if index < EXACT_BELOW {
        return (index, 1);
    }
    let e = index / SUB_BUCKETS + 4;
    let mantissa = index % SUB_BUCKETS + SUB_BUCKETS;
    let shift = e - 5;
    (mantissa << shift, 1 << shift)
}

/// The value a bucket stands for: its midpoint (its only value below 64).
pub fn bucket_value(index: u32) -> f64 {
    let (low, width) = bucket_bounds(index);
    if width == 1 {
        low as f64
    } else {
        low as f64 + (width as f64 - 1.0) / 2.0
    }
}

/// Counts per bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Histogram {
    buckets: BTreeMap<u32, u64>,
}

impl Histogram {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn record(&mut self, v: u64) {
        self.add_bucket(bucket_of(v), 1);
    }

    /// Adds `count` values of bucket `index` (a stored bucket, or another histogram's).
    pub fn add_bucket(&mut self, index: u32, count: u64) {
        if count > 0 {
            *self.buckets.entry(index).or_default() += count;
        }
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (&i, &c) in &other.buckets {
            self.add_bucket(i, c);
        }
    }

    /// Non-empty buckets in value order.
    pub fn buckets(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        self.buckets.iter().map(|(&i, &c)| (i, c))
    }

    pub fn count(&self) -> u64 {
        self.buckets.values().sum()
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    /// The nearest-rank `p`-th percentile (`0 < p <= 100`): the value of the bucket holding the
    /// `ceil(p/100 * n)`-th smallest value; `None` when empty.
    pub fn percentile(&self, p: f64) -> Option<f64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let rank = ((p / 100.0 * n as f64).ceil() as u64).clamp(1, n);
        let mut seen = 0;
        for (&i, &c) in &self.buckets {
            seen += c;
            if seen >= rank {
                return Some(bucket_value(i));
            }
        }
        self.buckets.keys().last().map(|&i| bucket_value(i))
    }

    /// Mean of the buckets' values.
    pub fn mean(&self) -> Option<f64> {
        let n = self.count();
        (n > 0).then(|| {
            self.buckets
                .iter()
                .map(|(&i, &c)| bucket_value(i) * c as f64)
                .sum::<f64>()
                / n as f64
        })
    }

    /// P50, P95 and P99, rounded to a tenth.
    pub fn summary(&self) -> Percentiles {
        let round = |v: Option<f64>| v.map(|v| (v * 10.0).round() / 10.0);
        Percentiles {
            p50: round(self.percentile(50.0)),
            p95: round(self.percentile(95.0)),
            p99: round(self.percentile(99.0)),
            mean: round(self.mean()),
        }
    }
}

/// Percentiles of a histogram; `null` without data.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, ToSchema)]
pub struct Percentiles {
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
    pub mean: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xorshift64*: reproducible samples without a dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn unit(&mut self) -> f64 {
            (self.next() >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    fn exact(sorted: &[u64], p: f64) -> u64 {
        let rank = ((p / 100.0 * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1]
    }

    #[test]
    fn buckets_cover_every_value_once_in_order() {
        let mut previous = None;
        for v in (0..5_000u64).chain([u32::MAX as u64, u64::MAX / 3, u64::MAX]) {
            let i = bucket_of(v);
            let (low, width) = bucket_bounds(i);
            assert!(
                low <= v && v - low < width,
                "{v} in bucket {i} = [{low}, +{width})"
            );
            assert!(
                width == 1 || width * SUB_BUCKETS <= low,
                "bucket {i} too wide"
            );
            if let Some(p) = previous {
                assert!(i >= p, "buckets in value order");
            }
            previous = Some(i);
        }
    }

    #[test]
    fn percentiles_are_within_two_percent_of_exact_ones_on_random_samples() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        // Latency-like (log-normal-ish over 1 ms .. 10 min), uniform and small-integer samples.
        let shapes: [&dyn Fn(&mut Rng) -> u64; 3] = [
            &|r| (10f64.powf(r.unit() * 5.8)) as u64,
            &|r| r.next() % 1_000_000,
            &|r| r.next() % 101,
        ];
        for (s, shape) in shapes.iter().enumerate() {
            for n in [1usize, 7, 100, 10_000] {
                let mut samples: Vec<u64> = (0..n).map(|_| shape(&mut rng)).collect();
                let mut h = Histogram::new();
                samples.iter().for_each(|&v| h.record(v));
                samples.sort_unstable();
                assert_eq!(h.count(), n as u64);
                for p in [1.0, 25.0, 50.0, 90.0, 95.0, 99.0, 99.9, 100.0] {
                    let want = exact(&samples, p) as f64;
                    let got = h.percentile(p).expect("not empty");
                    let error = if want == 0.0 {
                        got
                    } else {
                        (got - want).abs() / want
                    };
                    assert!(
                        error <= 0.02,
                        "shape {s}, n {n}, p{p}: {got} vs exact {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn merged_histograms_equal_one_histogram_of_all_values() {
        let mut rng = Rng(42);
        let values: Vec<u64> = (0..3_000).map(|_| rng.next() % 100_000).collect();
        let mut whole = Histogram::new();
        let (mut a, mut b) = (Histogram::new(), Histogram::new());
        for (i, &v) in values.iter().enumerate() {
            whole.record(v);
            if i % 3 == 0 { &mut a } else { &mut b }.record(v);
        }
        a.merge(&b);
        assert_eq!(a, whole);
        assert_eq!(Histogram::new().percentile(50.0), None);
        assert_eq!(Histogram::new().summary(), Percentiles::default());
    }
}
