//! What `convkit inspect` asks of the core: image embeddings from a pretrained network, nearest neighbours by cosine
//! similarity and the pixel match of the pairs they find (near-duplicates, leakage), and out-of-sample class probabilities from a linear probe on the
//! embeddings (label errors). Ranking and reporting are TypeScript's.

mod embed;
mod linear_probe;
mod neighbours;
mod pixel_match;

pub use embed::{embeddings, Embeddings};
pub use linear_probe::{cross_validated_probabilities, ProbeOptions};
pub use neighbours::{nearest_neighbours, Neighbours};
pub use pixel_match::{pixel_match, ImageBytes, MATCH_SIDE};

use tch::{Kind, Tensor};

use crate::error::{Error, Result};

/// `rows × dim` floats as a CPU tensor, after checking the length.
fn matrix(values: &[f32], rows: usize, dim: usize, what: &str) -> Result<Tensor> {
    if dim == 0 || values.len() != rows * dim {
        return Err(Error::BadShape {
            what: what.into(),
            expected: format!("{rows} rows of {dim} floats ({} values)", rows * dim),
            got: format!("{} values", values.len()),
        });
    }
    Ok(Tensor::f_from_slice(values)?.f_view([rows as i64, dim as i64])?)
}

/// Each row divided by its Euclidean length (rows of zeros stay zero): cosine similarity becomes a dot product.
fn unit_rows(t: &Tensor) -> Result<Tensor> {
    let norms = t
        .f_to_kind(Kind::Float)?
        .f_norm_scalaropt_dim(2, &[1i64][..], true)?
        .f_clamp_min(1e-12)?;
    Ok(t.f_to_kind(Kind::Float)?.f_div(&norms)?)
}
