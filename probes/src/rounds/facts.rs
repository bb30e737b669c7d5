//! Facts of several rounds combined into one set, for the facts a probe's
//! merge does not re-derive from its merged data, and the small sums and
//! weighted means the probes' merges re-derive theirs with.

use serde_json::{Map, Value};

/// Combines the rounds' facts key by key: a value every round agrees on is
/// kept; differing numbers give the median round's number (the lower
/// middle one for an even count, so it is always a measured value);
/// objects are combined key by key the same way; anything else takes the
/// last round's value.
pub fn merge_facts(rounds: &[&Map<String, Value>]) -> Map<String, Value> {
    let mut keys: Vec<&String> = Vec::new();
    for facts in rounds {
        for key in facts.keys() {
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
    }
    keys.into_iter()
        .map(|key| {
            let values: Vec<&Value> = rounds.iter().filter_map(|f| f.get(key)).collect();
            (key.clone(), merge_values(&values))
        })
        .collect()
}

fn merge_values(values: &[&Value]) -> Value {
    let Some(last) = values.last() else {
        return Value::Null;
    };
    if values.iter().all(|v| v == last) {
        return (*last).clone();
    }
    if values.iter().all(|v| v.is_number()) {
        let mut numbers: Vec<&Value> = values.to_vec();
        numbers.sort_by(|a, b| {
            let (a, b) = (a.as_f64().unwrap_or(0.0), b.as_f64().unwrap_or(0.0));
            a.total_cmp(&b)
        });
        return numbers[(numbers.len() - 1) / 2].clone();
    }
    if values.iter().all(|v| v.is_object()) {
        let maps: Vec<&Map<String, Value>> = values.iter().filter_map(|v| v.as_object()).collect();
        return Value::Object(merge_facts(&maps));
    }
    (*last).clone()
}

/// The sum of a numeric fact over the rounds that have it: an integer when
/// every value is one. None when no round has it as a number.
pub fn sum_fact(rounds: &[&Map<String, Value>], key: &str) -> Option<Value> {
    let values: Vec<&Value> = rounds
        .iter()
        .filter_map(|f| f.get(key))
        .filter(|v| v.is_number())
        .collect();
    if values.is_empty() {
        return None;
    }
    if values.iter().all(|v| v.is_u64()) {
        return Some(values.iter().filter_map(|v| v.as_u64()).sum::<u64>().into());
    }
    Some(values.iter().filter_map(|v| v.as_f64()).sum::<f64>().into())
}

/// The mean of a numeric fact over the rounds, each weighted by its number
/// `weight` (e.g. seconds measured): a share of time over all the rounds'
/// time. None when no round has both as numbers or the weights sum to 0.
pub fn weighted_mean_fact(rounds: &[&Map<String, Value>], key: &str, weight: &str) -> Option<f64> {
    let mut sum = 0.0;
    let mut total = 0.0;
    for facts in rounds {
        let (Some(v), Some(w)) = (
            facts.get(key).and_then(Value::as_f64),
            facts.get(weight).and_then(Value::as_f64),
        ) else {
            continue;
        };
        sum += v * w;
        total += w;
    }
    (total > 0.0).then(|| sum / total)
}
