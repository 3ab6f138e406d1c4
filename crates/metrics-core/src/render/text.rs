//! Prometheus text format 0.0.4, written by the `prometheus` crate's
//! `TextEncoder`.

use prometheus::proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType};

use crate::model::{Kind, Snapshot};

pub(super) fn render(snapshot: &Snapshot) -> String {
    let families: Vec<MetricFamily> = snapshot
        .families
        .iter()
        .filter(|f| !f.samples.is_empty())
        .map(|family| {
            let mut mf = MetricFamily::default();
            mf.set_name(family.exposed_name());
            mf.set_help(family.help.clone());
            mf.set_field_type(match family.kind {
                Kind::Gauge => MetricType::GAUGE,
                Kind::Counter => MetricType::COUNTER,
            });
            let metrics = family
                .samples
                .iter()
                .map(|sample| {
                    let labels = sample
                        .labels
                        .iter()
                        .map(|(k, v)| {
                            let mut pair = LabelPair::default();
                            pair.set_name(k.clone());
                            pair.set_value(v.clone());
                            pair
                        })
                        .collect();
                    let mut metric = Metric::from_label(labels);
                    match family.kind {
                        Kind::Gauge => {
                            let mut g = Gauge::default();
                            g.set_value(sample.value);
                            metric.set_gauge(g);
                        }
                        Kind::Counter => {
                            let mut c = Counter::default();
                            c.set_value(sample.value);
                            metric.set_counter(c);
                        }
                    }
                    metric
                })
                .collect();
            mf.set_metric(metrics);
            mf
        })
        .collect();
    let mut out = String::new();
    if let Err(e) = prometheus::TextEncoder::new().encode_utf8(&families, &mut out) {
        // Only a family without samples fails, and those are filtered out.
        tracing::error!("Prometheus text encoding failed: {e}");
    }
    out
}
