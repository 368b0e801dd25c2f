//! The little floating-point the recorder needs without libm: a natural logarithm for drawing
//! exponentially distributed sampling intervals (-ln U × mean).

/// ln(x) for x > 0, relative error below 1e-9: x = m · 2^e with m in [1/√2, √2), then
/// ln m = 2 atanh((m-1)/(m+1)) by its series (|t| < 0.172, so 9 terms suffice).
pub fn ln(x: f64) -> f64 {
    if x <= 0.0 || x.is_nan() {
        return f64::NEG_INFINITY;
    }
    let bits = x.to_bits();
    let mut e = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mut m = f64::from_bits((bits & ((1u64 << 52) - 1)) | (1023u64 << 52));
    if e == -1023 {
        // subnormal: scale up first
        return ln(x * (1u64 << 54) as f64) - 54.0 * core::f64::consts::LN_2;
    }
    if m > core::f64::consts::SQRT_2 {
        m /= 2.0;
        e += 1;
    }
    let t = (m - 1.0) / (m + 1.0);
    let t2 = t * t;
    let mut term = t;
    let mut sum = 0.0;
    let mut k = 1.0;
    for _ in 0..10 {
        sum += term / k;
        term *= t2;
        k += 2.0;
    }
    2.0 * sum + e as f64 * core::f64::consts::LN_2
}

/// xorshift64*: the sampling intervals' random numbers (not for secrets).
pub fn next_random(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    x.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

/// An exponentially distributed interval with the given mean, at least 1.
pub fn exp_interval(state: &mut u64, mean: u64) -> i64 {
    // U in (0, 1]: 53 random bits.
    let u = ((next_random(state) >> 11) + 1) as f64 / (1u64 << 53) as f64;
    let v = -ln(u) * mean as f64;
    if v < 1.0 {
        1
    } else if v > 1e15 {
        1_000_000_000_000_000
    } else {
        v as i64
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    #[test]
    fn ln_matches_std() {
        for &x in &[
            1e-300, 1e-10, 0.001, 0.5, 0.999, 1.0, 1.5, 2.0, 3.7, 1e6, 1e300,
        ] {
            let want = std::primitive::f64::ln(x);
            assert!(
                (ln(x) - want).abs() <= 1e-9 * want.abs().max(1.0),
                "{x}: {} vs {want}",
                ln(x)
            );
        }
    }

    #[test]
    fn intervals_have_the_mean() {
        let mut s = 0x1234_5678_9abc_def1u64;
        let n = 200_000;
        let mean = 524_288u64;
        let sum: i64 = (0..n).map(|_| exp_interval(&mut s, mean)).sum();
        let got = sum as f64 / n as f64;
        // standard error of the mean: mean / sqrt(n) = 0.22 % here; allow 1 %
        assert!((got / mean as f64 - 1.0).abs() < 0.01, "mean {got}");
    }
}
