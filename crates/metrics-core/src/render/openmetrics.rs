//! OpenMetrics 1.0 text, written by `prometheus-client`'s encoder.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit as PcUnit};

use crate::model::{Kind, Snapshot, Unit};

#[derive(Debug)]
struct Families(Arc<Snapshot>);

impl Collector for Families {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        for family in &self.0.families {
            let unit = family.unit.map(|u| match u {
                Unit::Bytes => PcUnit::Bytes,
                Unit::Seconds => PcUnit::Seconds,
                Unit::Ratio => PcUnit::Other("ratio".to_owned()),
            });
            let metric_type = match family.kind {
                Kind::Gauge => MetricType::Gauge,
                Kind::Counter => MetricType::Counter,
            };
            let mut metric = encoder.encode_descriptor(
                &family.name,
                &family.help,
                unit.as_ref(),
                metric_type,
            )?;
            for sample in &family.samples {
                let encoder = metric.encode_family(&sample.labels)?;
                match family.kind {
                    Kind::Gauge => Gauge(sample.value).encode(encoder)?,
                    Kind::Counter => Counter(sample.value).encode(encoder)?,
                }
            }
        }
        Ok(())
    }
}

#[derive(Debug)]
struct Gauge(f64);

impl EncodeMetric for Gauge {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::MetricEncoder<'_>,
    ) -> Result<(), std::fmt::Error> {
        encoder.encode_gauge(&self.0)
    }
    fn metric_type(&self) -> MetricType {
        MetricType::Gauge
    }
}

#[derive(Debug)]
struct Counter(f64);

impl EncodeMetric for Counter {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::MetricEncoder<'_>,
    ) -> Result<(), std::fmt::Error> {
        encoder.encode_counter::<NoLabelSet, f64, f64>(&self.0, None)
    }
    fn metric_type(&self) -> MetricType {
        MetricType::Counter
    }
}

pub(super) fn render(snapshot: &Snapshot) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Families(Arc::new(snapshot.clone()))));
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}
