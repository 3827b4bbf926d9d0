//! Time to attach and detach pods with the real plugins (as root): `cargo bench --bench
//! cni_pods`. Sets up 20 pods one after another on a fresh bridge, then tears them down, once
//! without and once with a hostPort per pod, and prints a table (milliseconds).

#[path = "../tests/cni_support/mod.rs"]
mod cni_support;
use cni_support as common;

use std::time::{Duration, Instant};

use common::{remove_portmap_chains, TestNet};
use k1s::cni::{netns, Cni, PodNetwork, PortMapping, Protocol};

const PODS: usize = 20;

fn stats(name: &str, mut d: Vec<Duration>) {
    let first = d[0];
    d.sort();
    let ms = |x: Duration| x.as_secs_f64() * 1000.0;
    let mean = d.iter().sum::<Duration>() / d.len() as u32;
    println!(
        "{name:<44} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1}",
        ms(mean),
        ms(d[d.len() / 2]),
        ms(d[0]),
        ms(d[d.len() - 1]),
        ms(first)
    );
}

async fn round(t: &TestNet, with_ports: bool, label: &str) {
    let cni = Cni::new(t.cfg.clone()).expect("plugins installed");
    let (mut create, mut setup, mut teardown, mut remove) = (vec![], vec![], vec![], vec![]);
    let base = if with_ports { 100 } else { 0 };
    let mut pods = Vec::new();
    for i in 0..PODS {
        let started = Instant::now();
        let mut pod = t.pod(base + i);
        create.push(started.elapsed());
        if with_ports {
            pod.port_mappings = vec![PortMapping {
                host_port: 41000 + i as u16,
                container_port: 80,
                protocol: Protocol::Tcp,
                host_ip: None,
            }];
        }
        let started = Instant::now();
        cni.setup(&pod).await.expect("setup");
        setup.push(started.elapsed());
        pods.push(pod);
    }
    for pod in &pods {
        let started = Instant::now();
        cni.teardown(pod).await.expect("teardown");
        teardown.push(started.elapsed());
        let started = Instant::now();
        netns::remove(&pod.netns).expect("remove netns");
        remove.push(started.elapsed());
    }
    stats(&format!("netns::create ({label})"), create);
    stats(&format!("setup: loopback + k1s ADD ({label})"), setup);
    stats(&format!("teardown: k1s + loopback DEL ({label})"), teardown);
    stats(&format!("netns::remove ({label})"), remove);
    cni.remove_host_rules()
        .await
        .expect("remove masquerade rule");
}

#[tokio::main]
async fn main() {
    let had_hostport_chains = common::nat_rules().contains("-N CNI-HOSTPORT-DNAT");
    let t = TestNet::new(50);
    println!("{PODS} pods, sequential, Debian containernetworking-plugins, times in ms");
    println!(
        "{:<44} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "operation", "mean", "median", "min", "max", "first"
    );
    round(&t, false, "no hostPort").await;
    round(&t, true, "1 hostPort").await;
    if !had_hostport_chains {
        remove_portmap_chains();
    }
}
