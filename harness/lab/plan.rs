//! The ready plan `lab up` writes (DESIGN.md "Plan files"), so that
//! `infraqual run <state dir>/plan.toml` works on the lab unchanged.

use super::state::LabState;

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
    out.push_str(
        "\n[probes.inventory]\n\n[probes.rtt]\npaths = [\"native\", \"overlay\"]\ncount = 1000\n\n[probes.mtu]\n",
    );
    out
}
