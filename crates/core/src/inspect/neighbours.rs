//! Nearest neighbours by cosine similarity, exhaustively: a chunk of queries times every key, top-k per row. 60 000
//! embeddings of 1 280 floats are 4.6 TFLOP against themselves, a minute of matrix products on two cores, with memory
//! bounded by the chunk.

use tch::{Kind, Tensor};

use super::{matrix, unit_rows};
use crate::error::{Error, Result};
use crate::host::{host_floats, host_indices};

/// For each query, its `k` most similar keys, most similar first.
#[derive(Debug, Clone, PartialEq)]
pub struct Neighbours {
    /// `queries × k` indices into the keys, row by row.
    pub indices: Vec<i64>,
    /// `queries × k` cosine similarities, each row descending.
    pub similarities: Vec<f32>,
    pub k: i64,
}

/// Queries compared at once: 1 024 rows against 60 000 keys is a 245 MB similarity block.
const CHUNK: usize = 1024;

/// The `k` nearest keys of every query by cosine similarity. `keys` of `None` searches the queries among themselves,
/// never matching a row with itself. Rows are `dim` floats.
pub fn nearest_neighbours(
    queries: &[f32],
    query_count: usize,
    keys: Option<(&[f32], usize)>,
    dim: usize,
    k: usize,
) -> Result<Neighbours> {
    let q = unit_rows(&matrix(queries, query_count, dim, "queries")?)?;
    let (keys_t, key_count, own) = match keys {
        Some((values, count)) => (unit_rows(&matrix(values, count, dim, "keys")?)?, count, false),
        None => (q.shallow_clone(), query_count, true),
    };
    let available = if own { key_count.saturating_sub(1) } else { key_count };
    if k == 0 || k > available {
        return Err(Error::option(
            "k",
            format!("an integer in 1..={available} (the keys to choose from)"),
            k,
        ));
    }
    let _guard = tch::no_grad_guard();
    let keys_t = keys_t.f_transpose(0, 1)?.f_contiguous()?;
    let mut indices = Vec::with_capacity(query_count * k);
    let mut similarities = Vec::with_capacity(query_count * k);
    for start in (0..query_count).step_by(CHUNK) {
        let rows = CHUNK.min(query_count - start);
        let mut block = q.f_narrow(0, start as i64, rows as i64)?.f_mm(&keys_t)?;
        if own {
            // A row's own column would always win: push it below every real similarity (all are ≥ -1).
            let own_columns =
                Tensor::f_arange_start(start as i64, (start + rows) as i64, (Kind::Int64, block.device()))?;
            let _ = block.f_index_put_(
                &[
                    Some(Tensor::f_arange(rows as i64, (Kind::Int64, block.device()))?),
                    Some(own_columns),
                ],
                &Tensor::from(-2f32),
                false,
            )?;
        }
        let (top, at) = block.f_topk(k as i64, 1, true, true)?;
        similarities.extend(host_floats(&top)?);
        indices.extend(host_indices(&at)?);
    }
    Ok(Neighbours {
        indices,
        similarities,
        k: k as i64,
    })
}
