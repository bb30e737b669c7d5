//! The ready plan `lab up` writes (docs/plan-files.md), so that
//! `infraqual run <state dir>/plan.toml` works on the lab unchanged.

use super::state::LabState;

/// Exchanges per target, path and kind on a lab without WAN delay (µs round
/// trips: 1,000 take well under a second).
const LOCAL_COUNT: u32 = 1000;
/// Between regions every exchange costs a full WAN round trip and sources
/// run one at a time, so 1,000 per kind and path would keep a two-node
/// Oslo/Frankfurt lab busy for five minutes; 300 still give a p99 from three
/// samples above it.
const REGIONS_COUNT: u32 = 300;

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
            "\n# Cross-region exchanges cost a WAN round trip each: {REGIONS_COUNT} per kind and\n\
             # path keep the rtt phase to a few minutes. Raise it for tighter tails.\n"
        ));
        REGIONS_COUNT
    };
    out.push_str(&format!(
        "\n[probes.inventory]\n\n[probes.rtt]\npaths = [\"native\", \"overlay\"]\ncount = {count}\n\n[probes.mtu]\n",
    ));
    out
}
