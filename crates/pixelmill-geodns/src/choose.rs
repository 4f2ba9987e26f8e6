//! Which addresses answer a client: pure, so the policy is tested without sockets.

use pixelmill_regions::{Region, Regions};
use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};

/// What the service name resolves to for one client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Choice<'a> {
    /// The region answering, or `None` when no region has a healthy node.
    pub region: Option<&'a str>,
    pub addrs: Vec<IpAddr>,
    /// How many bits of the client's address the choice depended on (the ECS scope).
    pub scope: u8,
}

/// The regions to try for `client`, nearest first: the region whose client prefixes hold it,
/// that region's fallbacks, then every other region by name.
pub fn preference(regions: &Regions, client: IpAddr) -> (Vec<&Region>, u8) {
    let home = regions.home_of(client);
    let scope = home
        .and_then(|r| r.clients.as_ref())
        .and_then(|c| {
            c.prefixes
                .iter()
                .filter(|p| p.contains(&client))
                .map(|p| p.prefix_len())
                .max()
        })
        .unwrap_or(0);
    let mut order: Vec<&Region> = Vec::new();
    if let Some(home) = home {
        order.push(home);
        let fallback = home.clients.iter().flat_map(|c| &c.fallback);
        order.extend(fallback.filter_map(|name| regions.get(name).ok()));
    }
    for region in regions.iter() {
        if !order.iter().any(|r| r.name == region.name) {
            order.push(region);
        }
    }
    (order, scope)
}

/// The healthy nodes of the first region in `client`'s preference that has any.
pub fn choose<'a>(
    regions: &'a Regions,
    healthy: &HashSet<SocketAddr>,
    client: IpAddr,
) -> Choice<'a> {
    let (order, scope) = preference(regions, client);
    for region in order {
        let nodes = region.api.iter().flat_map(|api| &api.nodes);
        let addrs: Vec<IpAddr> = nodes
            .filter(|n| healthy.contains(n))
            .map(|n| n.ip())
            .collect();
        if !addrs.is_empty() {
            return Choice {
                region: Some(&region.name),
                addrs,
                scope,
            };
        }
    }
    Choice {
        region: None,
        addrs: Vec::new(),
        scope,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regions() -> (tempfile::TempDir, Regions) {
        let dir = tempfile::tempdir().unwrap();
        for (name, i, fallback) in [
            ("eu", 1, "\"us\", \"ap\""),
            ("us", 2, "\"eu\", \"ap\""),
            ("ap", 3, "\"us\", \"eu\""),
        ] {
            let file = format!(
                "datacenter = \"dc{i}\"\n[metadata]\ncql = [\"h:9042\"]\nreplicas = 1\n\
                 [api]\nnodes = [\"10.0.{i}.1:8080\", \"10.0.{i}.2:8080\"]\n\
                 [clients]\nprefixes = [\"192.168.{i}.0/24\"]\nfallback = [{fallback}]\n"
            );
            std::fs::write(dir.path().join(format!("{name}.toml")), file).unwrap();
        }
        let regions = Regions::load(dir.path()).unwrap();
        (dir, regions)
    }

    fn all_healthy(regions: &Regions) -> HashSet<SocketAddr> {
        regions
            .iter()
            .flat_map(|r| r.api.as_ref().unwrap().nodes.clone())
            .collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_client_gets_its_own_regions_healthy_nodes() {
        let (_dir, regions) = regions();
        let mut healthy = all_healthy(&regions);
        let choice = choose(&regions, &healthy, ip("192.168.2.77"));
        assert_eq!(choice.region, Some("us"));
        assert_eq!(choice.addrs, [ip("10.0.2.1"), ip("10.0.2.2")]);
        assert_eq!(choice.scope, 24);
        healthy.remove(&"10.0.2.1:8080".parse().unwrap());
        let choice = choose(&regions, &healthy, ip("192.168.2.77"));
        assert_eq!(
            choice.addrs,
            [ip("10.0.2.2")],
            "an unhealthy node leaves the answer"
        );
    }

    #[test]
    fn a_region_without_healthy_nodes_hands_its_clients_to_its_nearest_fallback() {
        let (_dir, regions) = regions();
        let mut healthy = all_healthy(&regions);
        for node in ["10.0.2.1:8080", "10.0.2.2:8080"] {
            healthy.remove(&node.parse().unwrap());
        }
        assert_eq!(
            choose(&regions, &healthy, ip("192.168.2.9")).region,
            Some("eu")
        );
        for node in ["10.0.1.1:8080", "10.0.1.2:8080"] {
            healthy.remove(&node.parse().unwrap());
        }
        assert_eq!(
            choose(&regions, &healthy, ip("192.168.2.9")).region,
            Some("ap")
        );
        assert_eq!(
            choose(&regions, &HashSet::new(), ip("192.168.2.9")).region,
            None
        );
    }

    #[test]
    fn an_unknown_client_gets_the_first_healthy_region_by_name() {
        let (_dir, regions) = regions();
        let healthy = all_healthy(&regions);
        let choice = choose(&regions, &healthy, ip("172.16.0.1"));
        assert_eq!((choice.region, choice.scope), (Some("ap"), 0));
    }
}
