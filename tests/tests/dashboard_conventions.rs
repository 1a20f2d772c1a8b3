//! The dashboards' static conventions, without root: every panel and
//! target uses the `datasource` variable, the template variables, the
//! import inputs (`__inputs`, `__requires`), and every panel has a shape in
//! [`SHAPES`] (which the end-to-end test in `dashboards.rs` checks against
//! a real Prometheus).

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
};

use agentmon_tests::{
    SHAPES, dashboards, dashboards_dir, label_values_query, legend_labels, panel_queries, panels,
    shape,
};
use serde_json::Value;

/// The data source reference every panel and target must carry: the
/// `${datasource}` variable, never a UID of someone's Grafana.
fn datasource_ref() -> Value {
    serde_json::json!({"type": "prometheus", "uid": "${datasource}"})
}

/// Every `datasource` object anywhere in `v`, with its JSON path.
fn datasource_refs<'a>(v: &'a Value, path: &str, out: &mut Vec<(String, &'a Value)>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                let here = format!("{path}/{k}");
                if k == "datasource" && child.is_object() {
                    out.push((here.clone(), child));
                }
                datasource_refs(child, &here, out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                datasource_refs(child, &format!("{path}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// What Grafana's import (from a file or grafana.com) reads: one Prometheus
/// data source input, and the Grafana version, data source and exactly the
/// panel types the dashboard uses. Provisioning does not fill inputs in, so
/// nothing else names `DS_PROMETHEUS`: panels read the `datasource` variable.
fn check_import_inputs(file: &str, d: &Value) {
    assert_eq!(
        d["__inputs"],
        serde_json::json!([{
            "name": "DS_PROMETHEUS",
            "label": "Prometheus",
            "description": d["__inputs"][0]["description"],
            "type": "datasource",
            "pluginId": "prometheus",
            "pluginName": "Prometheus",
        }]),
        "{file}: __inputs"
    );
    let mut rest = d.clone();
    rest.as_object_mut().unwrap().remove("__inputs");
    assert!(
        !rest.to_string().contains("DS_PROMETHEUS"),
        "{file}: DS_PROMETHEUS outside __inputs breaks provisioning"
    );
    let requires: BTreeSet<(String, String)> = d["__requires"]
        .as_array()
        .unwrap_or_else(|| panic!("{file}: no __requires"))
        .iter()
        .map(|r| {
            let field = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
            (field("type"), field("id"))
        })
        .collect();
    let mut want: BTreeSet<(String, String)> = panels(d)
        .into_iter()
        .filter(|p| p["type"] != "row")
        .map(|p| ("panel".to_owned(), p["type"].as_str().unwrap().to_owned()))
        .collect();
    want.insert(("grafana".into(), "grafana".into()));
    want.insert(("datasource".into(), "prometheus".into()));
    assert_eq!(requires, want, "{file}: __requires");
    let grafana = d["__requires"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["type"] == "grafana");
    assert_eq!(
        grafana.unwrap()["version"],
        "10.4.0",
        "{file}: README says 10.4"
    );
}

#[test]
fn dashboards_follow_the_conventions_and_every_panel_has_a_shape() {
    let all = dashboards();
    let uids: BTreeSet<&str> = all.iter().filter_map(|(_, d)| d["uid"].as_str()).collect();
    assert_eq!(
        uids,
        BTreeSet::from(["agentmon-fleet", "agentmon-health", "agentmon-machine"])
    );
    let mut seen = BTreeSet::new();
    for (file, d) in &all {
        assert!(
            d["schemaVersion"].as_u64().is_some_and(|v| v >= 39),
            "{file}: schemaVersion {}",
            d["schemaVersion"]
        );
        assert!(d["id"].is_null(), "{file}: an `id` belongs to one Grafana");
        let vars: BTreeMap<&str, &Value> = d["templating"]["list"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| Some((v["name"].as_str()?, v)))
            .collect();
        assert_eq!(vars["datasource"]["type"], "datasource", "{file}");
        assert_eq!(vars["datasource"]["query"], "prometheus", "{file}");
        for name in ["instance", "tool"] {
            let var = vars
                .get(name)
                .unwrap_or_else(|| panic!("{file}: no ${name}"));
            assert_eq!(var["type"], "query", "{file}: ${name}");
            let definition = var["definition"].as_str().unwrap_or_default();
            assert!(
                label_values_query(definition).is_some(),
                "{file}: ${name} is {definition:?}"
            );
        }
        let mut refs = Vec::new();
        datasource_refs(d, "", &mut refs);
        for (path, r) in refs {
            assert_eq!(r, &datasource_ref(), "{file}{path}");
        }
        let mut ids = BTreeSet::new();
        let mut titles = BTreeSet::new();
        for panel in panels(d) {
            let title = panel["title"].as_str().unwrap_or_default();
            assert!(ids.insert(panel["id"].as_u64()), "{file}: panel id twice");
            assert!(titles.insert(title), "{file}: two panels called {title:?}");
            if panel["type"] == "row" {
                continue;
            }
            assert_eq!(panel["datasource"], datasource_ref(), "{file}: {title}");
            assert!(
                panel["description"].as_str().is_some_and(|s| !s.is_empty()),
                "{file}: {title} has no description"
            );
            let grid = &panel["gridPos"];
            let (x, w) = (grid["x"].as_u64().unwrap(), grid["w"].as_u64().unwrap());
            assert!(x + w <= 24, "{file}: {title} is wider than the grid");
        }
        check_import_inputs(file, d);
        let uid = d["uid"].as_str().unwrap();
        for q in panel_queries(d) {
            let labels = shape(uid, &q.panel)
                .unwrap_or_else(|| panic!("{uid}: panel {:?} has no entry in SHAPES", q.panel));
            assert!(
                !q.expr.trim().is_empty(),
                "{uid}: {} has an empty query",
                q.panel
            );
            assert!(
                q.expr.contains("$instance") || q.expr.contains("$tool"),
                "{uid}: {} ignores the template variables: {}",
                q.panel,
                q.expr
            );
            let shown = legend_labels(&q.legend);
            let returned: BTreeSet<String> = labels.iter().map(|l| (*l).to_owned()).collect();
            assert!(
                shown.is_subset(&returned),
                "{uid}: {} shows {shown:?} but returns {returned:?}",
                q.panel
            );
            seen.insert((uid.to_owned(), q.panel.clone()));
        }
        if uid == "agentmon-fleet" {
            let geomap = panels(d)
                .into_iter()
                .find(|p| p["type"] == "geomap")
                .expect("a geomap panel");
            let location = &geomap["options"]["layers"][0]["location"];
            assert_eq!(location["mode"], "lookup");
            assert_eq!(location["lookup"], "dest_country");
            assert_eq!(location["gazetteer"], "public/gazetteer/countries.json");
        }
    }
    for (d, p, _) in SHAPES {
        assert!(
            seen.contains(&(d.to_string(), p.to_string())),
            "SHAPES lists {d}: {p:?}, which no dashboard has"
        );
    }
    for file in [
        "provisioning/dashboards/agentmon.yml",
        "provisioning/datasources/prometheus.yml",
    ] {
        let text = fs::read_to_string(dashboards_dir().join(file))
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(text.contains("apiVersion: 1"), "{file}");
    }
}
