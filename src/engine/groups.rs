//! Splitting a cluster into logical groups for a gradual rollout.
//!
//! Members are named `S_M` (site, member) and sorted naturally, so `1_2`
//! comes before `1_10`. Members on more than one site: one group per site.
//! One site: two groups (or the number asked for) of sizes as equal as
//! possible, earlier groups taking the extra member, members kept in order.
//! Groups are named A, B, C, … A cluster of fewer than two members cannot be
//! rolled out gradually and is refused.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::engine::fleet::{Fleet, Grouping, Node};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub name: String,
    /// Node ids, in member order.
    pub members: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Partition {
    pub cluster: String,
    pub groups: Vec<Group>,
}

/// `A`, `B`, … `Z`, `AA`, `AB`, …
pub fn group_name(mut i: usize) -> String {
    let mut name = Vec::new();
    loop {
        name.push(b'A' + (i % 26) as u8);
        if i < 26 {
            break;
        }
        i = i / 26 - 1;
    }
    name.reverse();
    String::from_utf8(name).unwrap_or_default()
}

/// Compares strings with digit runs as numbers: `1_2 < 1_10`.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut x, mut y) = (a.as_bytes(), b.as_bytes());
    loop {
        match (x.first(), y.first()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(c), Some(d)) if c.is_ascii_digit() && d.is_ascii_digit() => {
                let n = x.iter().take_while(|b| b.is_ascii_digit()).count();
                let m = y.iter().take_while(|b| b.is_ascii_digit()).count();
                let (p, q) = (trim_zeros(&x[..n]), trim_zeros(&y[..m]));
                let ord = p
                    .len()
                    .cmp(&q.len())
                    .then_with(|| p.cmp(q))
                    .then_with(|| n.cmp(&m));
                if ord != Ordering::Equal {
                    return ord;
                }
                x = &x[n..];
                y = &y[m..];
            }
            (Some(c), Some(d)) => {
                if c != d {
                    return c.cmp(d);
                }
                x = &x[1..];
                y = &y[1..];
            }
        }
    }
}

fn trim_zeros(digits: &[u8]) -> &[u8] {
    let start = digits
        .iter()
        .position(|&d| d != b'0')
        .unwrap_or(digits.len());
    &digits[start..]
}

/// A member's `S_M` name: the fleet's `member`, else the id's `S_M` suffix.
pub fn member_name(node: &Node) -> Option<String> {
    if let Some(m) = &node.member {
        return Some(m.clone());
    }
    let tail = node.id.rsplit(['-', '.']).next()?;
    let (s, m) = tail.split_once('_')?;
    (!s.is_empty()
        && !m.is_empty()
        && s.bytes().all(|b| b.is_ascii_digit())
        && m.bytes().all(|b| b.is_ascii_digit()))
    .then(|| tail.to_string())
}

/// Why a cluster has no partition into logical groups (seed 002: at least
/// two members, two or more groups, no more groups than members).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartitionError {
    #[error("unknown cluster {cluster:?}; known: {known}")]
    UnknownCluster { cluster: String, known: String },
    #[error(
        "node {node} in cluster {cluster} has no member name S_M (set member = \"1_1\" in fleet.toml)"
    )]
    NoMemberName { node: String, cluster: String },
    #[error(
        "cluster {cluster}: {nodes} are both member {member}; each member needs its own S_M name (set member in fleet.toml)"
    )]
    DuplicateMember {
        cluster: String,
        member: String,
        nodes: String,
    },
    #[error(
        "cluster {cluster} has {members} member(s); a gradual rollout needs at least two, so that one group serves while another is patched"
    )]
    TooFewMembers { cluster: String, members: usize },
    #[error(
        "{groups} group(s) would take cluster {cluster} out of service all at once; ask for 2 or more"
    )]
    TooFewGroups { cluster: String, groups: usize },
    #[error("cluster {cluster} has {members} members; it cannot be split into {groups} groups")]
    TooManyGroups {
        cluster: String,
        members: usize,
        groups: usize,
    },
}

/// Splits ordered members (id, site) into groups by the rule above.
/// `asked` is the group count wanted for a single-site cluster.
pub fn split(
    cluster: &str,
    members: &[(String, String)],
    asked: Option<usize>,
) -> Result<Partition, PartitionError> {
    if members.len() < 2 {
        return Err(PartitionError::TooFewMembers {
            cluster: cluster.to_string(),
            members: members.len(),
        });
    }
    let mut sites: Vec<&str> = Vec::new();
    for (_, site) in members {
        if !sites.contains(&site.as_str()) {
            sites.push(site);
        }
    }
    let groups = if sites.len() > 1 {
        sites
            .iter()
            .enumerate()
            .map(|(i, site)| Group {
                name: group_name(i),
                members: members
                    .iter()
                    .filter(|(_, s)| s == site)
                    .map(|(id, _)| id.clone())
                    .collect(),
            })
            .collect()
    } else {
        let n = asked.unwrap_or(2);
        if n < 2 {
            return Err(PartitionError::TooFewGroups {
                cluster: cluster.to_string(),
                groups: n,
            });
        }
        if n > members.len() {
            return Err(PartitionError::TooManyGroups {
                cluster: cluster.to_string(),
                members: members.len(),
                groups: n,
            });
        }
        let (base, extra) = (members.len() / n, members.len() % n);
        let mut rest = members.iter();
        (0..n)
            .map(|i| Group {
                name: group_name(i),
                members: rest
                    .by_ref()
                    .take(base + usize::from(i < extra))
                    .map(|(id, _)| id.clone())
                    .collect(),
            })
            .collect()
    };
    Ok(Partition {
        cluster: cluster.to_string(),
        groups,
    })
}

/// The partition of a fleet cluster; `asked` overrides the cluster's own
/// group count (single-site clusters only: members on several sites are
/// always grouped by site).
pub fn partition(
    fleet: &Fleet,
    cluster: &str,
    asked: Option<usize>,
) -> Result<Partition, PartitionError> {
    let Some(c) = fleet.clusters.iter().find(|c| c.id == cluster) else {
        return Err(PartitionError::UnknownCluster {
            cluster: cluster.to_string(),
            known: fleet
                .clusters
                .iter()
                .map(|c| c.id.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    };
    let mut members = Vec::new();
    for n in fleet
        .nodes
        .iter()
        .filter(|n| n.cluster.as_deref() == Some(cluster))
    {
        let name = member_name(n).ok_or_else(|| PartitionError::NoMemberName {
            node: n.id.clone(),
            cluster: cluster.to_string(),
        })?;
        let site = name.split('_').next().unwrap_or_default().to_string();
        if let Some((_, _, other)) = members.iter().find(|(m, _, _)| *m == name) {
            return Err(PartitionError::DuplicateMember {
                cluster: cluster.to_string(),
                member: name,
                nodes: format!("{other} and {}", n.id),
            });
        }
        members.push((name, site, n.id.clone()));
    }
    members.sort_by(|a, b| natural_cmp(&a.0, &b.0));
    let configured = match &c.groups {
        Some(Grouping::Count(n)) => Some(*n),
        _ => None,
    };
    let ordered: Vec<(String, String)> = members
        .into_iter()
        .map(|(_, site, id)| (id, site))
        .collect();
    split(cluster, &ordered, asked.or(configured))
}

/// The warning for a group count the partition rule did not use (a
/// cluster on several sites is always one group per site), or `None`
/// when `asked` was honoured or not given.
pub fn unused_count(partition: &Partition, asked: Option<usize>) -> Option<String> {
    let asked = asked?;
    (asked != partition.groups.len()).then(|| {
        format!(
            "--groups {asked} is not used: the members of {} span {} sites, and a cluster on several sites is rolled out one group per site",
            partition.cluster,
            partition.groups.len()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(names: &[&str]) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = names
            .iter()
            .map(|n| (n.to_string(), n.split('_').next().unwrap().to_string()))
            .collect();
        v.sort_by(|a, b| natural_cmp(&a.0, &b.0));
        v
    }

    fn names(p: &Partition) -> Vec<(String, Vec<String>)> {
        p.groups
            .iter()
            .map(|g| (g.name.clone(), g.members.clone()))
            .collect()
    }

    #[test]
    fn two_sites_give_one_group_per_site() {
        let p = split("c", &members(&["2_1", "1_2", "1_1", "2_2"]), None).unwrap();
        assert_eq!(
            names(&p),
            [
                ("A".into(), vec!["1_1".into(), "1_2".into()]),
                ("B".into(), vec!["2_1".into(), "2_2".into()])
            ]
        );
        // Asking for a count does not split sites differently.
        assert_eq!(
            split("c", &members(&["1_1", "2_1", "3_1"]), Some(2))
                .unwrap()
                .groups
                .len(),
            3
        );
    }

    #[test]
    fn one_site_splits_evenly_earlier_groups_take_the_extra() {
        let p = split("c", &members(&["1_1", "1_2", "1_3", "1_4", "1_5"]), None).unwrap();
        assert_eq!(names(&p)[0].1, ["1_1", "1_2", "1_3"]);
        assert_eq!(names(&p)[1].1, ["1_4", "1_5"]);
        let p = split(
            "c",
            &members(&["1_1", "1_2", "1_3", "1_4", "1_5", "1_6", "1_7"]),
            Some(3),
        )
        .unwrap();
        let sizes: Vec<usize> = p.groups.iter().map(|g| g.members.len()).collect();
        assert_eq!(sizes, [3, 2, 2]);
        assert_eq!(p.groups[2].name, "C");
    }

    #[test]
    fn natural_order_puts_1_2_before_1_10() {
        let m = members(&["1_10", "1_2", "1_1", "1_9"]);
        let order: Vec<&str> = m.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(order, ["1_1", "1_2", "1_9", "1_10"]);
        let p = split("c", &m, None).unwrap();
        assert_eq!(names(&p)[0].1, ["1_1", "1_2"]);
        assert_eq!(names(&p)[1].1, ["1_9", "1_10"]);
    }

    #[test]
    fn fewer_than_two_members_or_groups_is_refused() {
        assert!(
            split("c", &members(&["1_1"]), None)
                .unwrap_err()
                .to_string()
                .contains("at least two")
        );
        assert!(split("c", &[], None).is_err());
        assert!(
            split("c", &members(&["1_1", "1_2"]), Some(1))
                .unwrap_err()
                .to_string()
                .contains("all at once")
        );
        assert!(
            split("c", &members(&["1_1", "1_2"]), Some(3))
                .unwrap_err()
                .to_string()
                .contains("cannot be split into 3")
        );
    }

    #[test]
    fn many_sites_and_odd_sizes() {
        let p = split(
            "c",
            &members(&["3_1", "1_1", "2_1", "2_2", "2_3", "10_1"]),
            None,
        )
        .unwrap();
        let got: Vec<(String, usize)> = p
            .groups
            .iter()
            .map(|g| (g.name.clone(), g.members.len()))
            .collect();
        assert_eq!(
            got,
            [
                ("A".into(), 1),
                ("B".into(), 3),
                ("C".into(), 1),
                ("D".into(), 1)
            ]
        );
        assert_eq!(p.groups[3].members, ["10_1"]);
        assert_eq!(group_name(25), "Z");
        assert_eq!(group_name(26), "AA");
    }

    #[test]
    fn natural_cmp_handles_zeros_and_text() {
        assert_eq!(
            natural_cmp("1_02", "1_2"),
            Ordering::Greater,
            "same value, longer run after"
        );
        assert_eq!(natural_cmp("a10", "a9"), Ordering::Greater);
        assert_eq!(natural_cmp("b1", "a9"), Ordering::Greater);
    }
}
