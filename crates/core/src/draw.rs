//! The seeds of a batch's random draws and the generator that turns them into crops, flips, boxes, mixing weights
//! and augmentation operations: every draw comes from a seed, so a run repeats and resumes exactly.

/// The seeds of one batch's draws.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Draw {
    /// Seeds this batch's crops, random flips and cutouts.
    pub batch_seed: u64,
    /// Seeds each image's alternating flip, together with its index; fixed for a run.
    pub run_seed: u64,
    pub epoch: i64,
}

/// SplitMix64: a tiny, well-mixed generator, enough for offsets and coin flips.
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A standard normal draw (Box–Muller).
    fn normal(&mut self) -> f64 {
        let u = 1.0 - self.unit();
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * self.unit()).cos()
    }

    /// A Gamma(`shape`, 1) draw (Marsaglia and Tsang; shapes below 1 boosted by U^(1/shape)).
    fn gamma(&mut self, shape: f64) -> f64 {
        if shape < 1.0 {
            return self.gamma(shape + 1.0) * (1.0 - self.unit()).powf(1.0 / shape);
        }
        let d = shape - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        loop {
            let x = self.normal();
            let v = (1.0 + c * x).powi(3);
            if v <= 0.0 {
                continue;
            }
            let u = 1.0 - self.unit();
            if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
                return d * v;
            }
        }
    }

    /// A Beta(`a`, `a`) draw.
    pub fn beta(&mut self, a: f64) -> f64 {
        let x = self.gamma(a);
        let y = self.gamma(a);
        x / (x + y)
    }
}
