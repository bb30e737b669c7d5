//! The ready plan `lab up` writes (docs/plan-files.md), so that
//! `infraqual run <state dir>/plan.toml` works on the lab unchanged.

use super::state::LabState;

/// Exchanges per target, path and kind on a lab without WAN delay (µs round
/// trips: 1,000 take well under a second).
const LOCAL_COUNT: u32 = 1000;
/// Between regions every exchange costs a full WAN round trip; with
/// `pipeline` lanes and the coordinator's tournament a 4-node Oslo/Frankfurt
/// lab measures 500 per kind and path in about a minute.
const REGIONS_COUNT: u32 = 500;
/// Exchanges in flight per target on the WAN paths (short paths keep one).
const REGIONS_PIPELINE: u32 = 8;

fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

pub fn render(st: &LabState) -> String {
    let mut out = format!(
        "# Written by `infraqual lab up` for lab {id}; removed by `infraqual lab down --id {id}`.\n\
         name = {name}\nprofile = \"etcd\"\n",
        id = st.id,
        name = quote(&format!("lab-{}", st.id)),
    );
    for n in &st.nodes {
        let (Some(url), Some(token)) = (&n.agent_url, &n.token_file) else {
            continue;
        };
        out.push_str(&format!(
            "\n[[agents]]\nname = {}\nurl = {}\ntoken_file = {}\nlabels = {{ region = {} }}\naddresses = {{ native = {}, overlay = {} }}\n",
            quote(&n.name),
            quote(url),
            quote(&token.display().to_string()),
            quote(&n.region),
            quote(&n.native),
            quote(&n.overlay),
        ));
    }
    let count = if st.regions.is_empty() {
        LOCAL_COUNT
    } else {
        out.push_str(&format!(
            "\n# Cross-region exchanges cost a WAN round trip each; `pipeline` keeps up to\n\
             # {REGIONS_PIPELINE} in flight on those paths so {REGIONS_COUNT} per kind and path take about a minute.\n"
        ));
        REGIONS_COUNT
    };
    let pipeline = if st.regions.is_empty() {
        String::new()
    } else {
        format!("pipeline = {REGIONS_PIPELINE}\n")
    };
    out.push_str(&format!(
        "\n[probes.inventory]\n\n[probes.rtt]\npaths = [\"native\", \"overlay\"]\ncount = {count}\n{pipeline}\n[probes.mtu]\n",
    ));
    out
}
