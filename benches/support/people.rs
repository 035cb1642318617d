//! Who an event is for: people drawn uniformly (the worst case for any cache) or by a Zipf law
//! (a few people make most events, as on real sites). `CDP_BENCH_DISTRIBUTION=uniform|zipf`.
#![allow(dead_code)] // not every benchmark draws people

use rand::Rng;
use rand_distr::{Distribution as _, Zipf};

/// The Zipf exponent: the realistic skew (the top 1 % of 1M people make ~60 % of events).
const ZIPF_EXPONENT: f64 = 1.1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Distribution {
    Uniform,
    Zipf,
}

impl Distribution {
    /// `CDP_BENCH_DISTRIBUTION` (default `uniform`); exits with a message on another value.
    pub fn from_env() -> Self {
        match std::env::var("CDP_BENCH_DISTRIBUTION").as_deref() {
            Err(_) | Ok("uniform") => Self::Uniform,
            Ok("zipf") => Self::Zipf,
            Ok(other) => {
                eprintln!("CDP_BENCH_DISTRIBUTION={other}: expected uniform or zipf");
                std::process::exit(2)
            }
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Uniform => "uniform",
            Self::Zipf => "zipf",
        }
    }
}

/// Draws people `0..n` by a [`Distribution`].
pub struct People {
    n: u64,
    zipf: Option<Zipf<f64>>,
}

impl People {
    pub fn new(n: u64, distribution: Distribution) -> Self {
        let zipf = (distribution == Distribution::Zipf)
            .then(|| Zipf::new(n, ZIPF_EXPONENT).expect("n > 0 and a positive exponent"));
        Self { n, zipf }
    }

    pub fn pick(&self, rng: &mut impl Rng) -> u64 {
        match &self.zipf {
            None => rng.gen_range(0..self.n),
            Some(zipf) => {
                let rank = zipf.sample(rng) as u64 - 1;
                // Ranks spread over the ids (a bijection for any n below the prime multiplier),
                // so the hot people are not the first ids with their shared traits (e-mail
                // domain, country).
                ((u128::from(rank) * 2_654_435_761) % u128::from(self.n)) as u64
            }
        }
    }
}
