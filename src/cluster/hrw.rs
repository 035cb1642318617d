//! Rendezvous (highest-random-weight) hashing: every node computes, from the same list of live
//! nodes, the same owner for each piece of work. When a node joins or leaves, only the work it
//! wins or held moves; everything else stays where it is.
//!
//! The hash is spelled out here (FNV-1a, then a 64-bit finalizer) rather than taken from
//! `std`, whose hasher may change between Rust releases: nodes built by different compilers
//! must still agree.

/// The node that should hold `work`, among `nodes`; `None` when there is none.
pub fn winner<'a>(nodes: &'a [String], work: &str) -> Option<&'a str> {
    nodes
        .iter()
        .max_by_key(|node| (weight(node, work), node.as_str()))
        .map(String::as_str)
}

fn weight(node: &str, work: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0100_0000_01b3;
    let mut h = OFFSET;
    // 0xff never occurs in UTF-8, so ("ab", "c") and ("a", "bc") hash apart.
    for b in node.bytes().chain([0xff]).chain(work.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(PRIME);
    }
    // splitmix64's finalizer: FNV alone mixes the last bytes poorly.
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn nodes(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("node-{i}")).collect()
    }

    fn shards(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("import/job/shardId-{i:012}"))
            .collect()
    }

    #[test]
    fn no_nodes_no_winner() {
        assert_eq!(winner(&[], "processor"), None);
    }

    #[test]
    fn work_spreads_evenly() {
        let nodes = nodes(4);
        let mut count: HashMap<&str, usize> = HashMap::new();
        for s in shards(4000) {
            *count.entry(winner(&nodes, &s).unwrap()).or_default() += 1;
        }
        assert_eq!(count.len(), 4);
        for (node, n) in count {
            assert!((850..=1150).contains(&n), "{node} won {n} of 4000");
        }
    }

    #[test]
    fn a_leaving_node_moves_only_its_own_work() {
        let before = nodes(5);
        let after: Vec<String> = before.iter().filter(|n| *n != "node-2").cloned().collect();
        for s in shards(1000) {
            let was = winner(&before, &s).unwrap();
            let is = winner(&after, &s).unwrap();
            if was != "node-2" {
                assert_eq!(was, is, "{s} moved though its node stayed");
            }
        }
    }

    #[test]
    fn a_joining_node_takes_work_only_for_itself() {
        let before = nodes(3);
        let mut after = before.clone();
        after.push("node-new".into());
        let mut moved = 0;
        for s in shards(3000) {
            let (was, is) = (winner(&before, &s).unwrap(), winner(&after, &s).unwrap());
            if was != is {
                assert_eq!(is, "node-new");
                moved += 1;
            }
        }
        assert!((600..=900).contains(&moved), "{moved} of 3000 moved");
    }

    #[test]
    fn the_order_of_the_node_list_does_not_matter() {
        let a = nodes(6);
        let mut b = a.clone();
        b.reverse();
        for s in shards(200) {
            assert_eq!(winner(&a, &s), winner(&b, &s));
        }
    }
}
