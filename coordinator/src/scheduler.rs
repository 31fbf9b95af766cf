//! The scheduler: a pure function from pending pods and boards to placements.
//!
//! Filters, in order (the first a board fails is its reason): ready, not cordoned, the pod's
//! `nodeSelector` (board labels include `kubernetes.io/arch` and `kubernetes.io/hostname`),
//! resources by requests (cpu, then memory), hostPorts free. Among the boards left, the score
//! is lexicographic: fewest replicas of the pod's owner (a Deployment) on the board, so replicas
//! spread; then the placement policy, `Spread` (most free after placing, Kubernetes'
//! LeastAllocated) or `Pack` (least free, fill fewer boards); then the board's name. The same
//! input always gives the same output, whatever the order of the boards.
//!
//! Pods are placed one after another in the order given, each seeing the placements before it.
//! A pod no board takes stays pending with a reason in Kubernetes' words:
//! `0/3 boards: 2 insufficient memory, 1 node selector mismatch`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use bramble_common::objects::{PodSpec, Protocol};

/// The label every board has with its CPU architecture (`arm64`, `arm`, `amd64`).
pub const ARCH_LABEL: &str = "kubernetes.io/arch";
/// The label every board has with its name.
pub const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";

/// CPU and memory, as requests or capacity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    pub cpu_millis: u64,
    pub memory_bytes: u64,
}

impl Resources {
    fn saturating_sub(self, other: Resources) -> Resources {
        Resources {
            cpu_millis: self.cpu_millis.saturating_sub(other.cpu_millis),
            memory_bytes: self.memory_bytes.saturating_sub(other.memory_bytes),
        }
    }
}

/// A port on the board's own address, as a pod's `hostPort` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HostPort {
    pub protocol: Protocol,
    pub port: u16,
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.port, self.protocol.name())
    }
}

/// A board as the scheduler sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Board {
    pub name: String,
    /// Heard from within the grace period.
    pub ready: bool,
    /// Cordoned: keeps its pods, takes no new ones.
    pub cordoned: bool,
    pub labels: BTreeMap<String, String>,
    /// What pods may request in all (the board's memory less what the system keeps).
    pub allocatable: Resources,
    /// Requests of the pods already on the board.
    pub requested: Resources,
    /// hostPorts the pods already on the board hold.
    pub host_ports: BTreeSet<HostPort>,
    /// How many pods of each owner (a Deployment's `namespace/name`) the board runs already.
    pub owners: BTreeMap<String, u32>,
}

/// A pod waiting for a board.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodRequest {
    /// `namespace/name`.
    pub key: String,
    /// The Deployment (`namespace/name`) the pod belongs to, whose replicas spread.
    pub owner: Option<String>,
    pub requests: Resources,
    pub node_selector: BTreeMap<String, String>,
    pub host_ports: Vec<HostPort>,
}

impl PodRequest {
    /// What pod `key` of `owner` asks for: its containers' requests summed (a limit with no
    /// request requests the limit, as the decoder filled in), its selector and hostPorts.
    pub fn from_spec(key: &str, owner: Option<&str>, spec: &PodSpec) -> PodRequest {
        let mut requests = Resources::default();
        let mut host_ports = Vec::new();
        for container in &spec.containers {
            let r = &container.resources.requests;
            requests.cpu_millis =
                requests.cpu_millis.saturating_add(r.cpu.as_ref().map_or(0, |q| q.millis()));
            requests.memory_bytes =
                requests.memory_bytes.saturating_add(r.memory.as_ref().map_or(0, |q| q.value()));
            host_ports.extend(
                container
                    .ports
                    .iter()
                    .filter_map(|p| Some(HostPort { protocol: p.protocol, port: p.host_port? })),
            );
        }
        PodRequest {
            key: key.to_owned(),
            owner: owner.map(str::to_owned),
            requests,
            node_selector: spec.node_selector.clone(),
            host_ports,
        }
    }
}

/// How to choose among boards that all fit, after spreading replicas.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Placement {
    /// The board with the most left free: load evens out.
    #[default]
    Spread,
    /// The board with the least left free: fewer boards busy, the others free for big pods.
    Pack,
}

/// What became of one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Bind { pod: String, board: String },
    Pending { pod: String, reason: String },
}

/// Why a board does not take a pod (the first filter it fails).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Misfit {
    NotReady,
    Cordoned,
    NodeSelector,
    Cpu,
    Memory,
    HostPort(HostPort),
}

impl fmt::Display for Misfit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Misfit::NotReady => f.write_str("not ready"),
            Misfit::Cordoned => f.write_str("cordoned"),
            Misfit::NodeSelector => f.write_str("node selector mismatch"),
            Misfit::Cpu => f.write_str("insufficient cpu"),
            Misfit::Memory => f.write_str("insufficient memory"),
            Misfit::HostPort(port) => write!(f, "hostPort {port} in use"),
        }
    }
}

/// A board's state while a batch is placed.
struct Slot<'a> {
    board: &'a Board,
    free: Resources,
    ports: BTreeSet<HostPort>,
    /// `1000 << 32` divided by the allocatable cpu and memory, so that a share in thousandths
    /// is a multiplication and a shift in the inner loop, not a division.
    per_mille_cpu: u64,
    per_mille_memory: u64,
}

/// `(1000 << 32) / total`, or 0 for nothing allocatable.
fn per_mille_scale(total: u64) -> u64 {
    (1000u64 << 32).checked_div(total).unwrap_or(0)
}

/// Places `pods` in order on `boards`.
pub fn schedule(pods: &[PodRequest], boards: &[Board], placement: Placement) -> Vec<Decision> {
    let mut slots: Vec<Slot<'_>> = boards
        .iter()
        .map(|board| Slot {
            board,
            free: board.allocatable.saturating_sub(board.requested),
            ports: board.host_ports.clone(),
            per_mille_cpu: per_mille_scale(board.allocatable.cpu_millis),
            per_mille_memory: per_mille_scale(board.allocatable.memory_bytes),
        })
        .collect();
    // Boards in name order: ties go to the first name, whatever order they came in.
    slots.sort_by(|a, b| a.board.name.cmp(&b.board.name));
    // Replicas per owner per board, created when an owner is first met.
    let mut owner_counts: HashMap<&str, Vec<u32>> = HashMap::new();
    // Which boards each distinct node selector matches, computed once per selector.
    let mut selector_matches: Vec<(&BTreeMap<String, String>, Vec<bool>)> = Vec::new();

    let mut decisions = Vec::with_capacity(pods.len());
    for pod in pods {
        let counts = pod.owner.as_deref().map(|owner| {
            owner_counts.entry(owner).or_insert_with(|| {
                slots.iter().map(|s| s.board.owners.get(owner).copied().unwrap_or(0)).collect()
            })
        });
        let matches = match selector_matches.iter().position(|(s, _)| *s == &pod.node_selector) {
            Some(i) => &selector_matches[i].1,
            None => {
                let mask = slots
                    .iter()
                    .map(|s| selector_matches_labels(&pod.node_selector, &s.board.labels))
                    .collect();
                selector_matches.push((&pod.node_selector, mask));
                &selector_matches[selector_matches.len() - 1].1
            }
        };

        let mut best: Option<(usize, (u32, i64))> = None;
        for (i, slot) in slots.iter().enumerate() {
            if !matches[i] || misfit(pod, slot).is_some() {
                continue;
            }
            let spread = counts.as_ref().map_or(0, |c| c[i]);
            let key = (spread, -fit_score(pod, slot, placement));
            if best.is_none_or(|(_, best_key)| key < best_key) {
                best = Some((i, key));
            }
        }

        match best {
            Some((i, _)) => {
                let slot = &mut slots[i];
                slot.free = slot.free.saturating_sub(pod.requests);
                slot.ports.extend(pod.host_ports.iter().copied());
                if let Some(counts) = counts {
                    counts[i] += 1;
                }
                decisions.push(Decision::Bind { pod: pod.key.clone(), board: slot.board.name.clone() });
            }
            None => {
                let reasons = slots.iter().enumerate().filter_map(|(i, slot)| {
                    if matches[i] { misfit(pod, slot) } else { Some(Misfit::NodeSelector) }
                });
                decisions.push(Decision::Pending {
                    pod: pod.key.clone(),
                    reason: unschedulable(slots.len(), reasons),
                });
            }
        }
    }
    decisions
}

fn selector_matches_labels(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The first filter (but the node selector, checked apart) that `slot` fails for `pod`.
fn misfit(pod: &PodRequest, slot: &Slot<'_>) -> Option<Misfit> {
    let board = slot.board;
    if !board.ready {
        return Some(Misfit::NotReady);
    }
    if board.cordoned {
        return Some(Misfit::Cordoned);
    }
    if pod.requests.cpu_millis > slot.free.cpu_millis {
        return Some(Misfit::Cpu);
    }
    if pod.requests.memory_bytes > slot.free.memory_bytes {
        return Some(Misfit::Memory);
    }
    pod.host_ports.iter().find(|p| slot.ports.contains(p)).map(|p| Misfit::HostPort(*p))
}

/// Higher is better. Spread: the share of the board left free after placing, in thousandths,
/// cpu and memory averaged (Kubernetes' LeastAllocated); Pack: the share used (MostAllocated).
fn fit_score(pod: &PodRequest, slot: &Slot<'_>, placement: Placement) -> i64 {
    // What is left never exceeds the total, so `left * scale <= 1000 << 32`: no overflow.
    let share = |free: u64, request: u64, scale: u64| (free.saturating_sub(request) * scale) >> 32;
    let free = (share(slot.free.cpu_millis, pod.requests.cpu_millis, slot.per_mille_cpu)
        + share(slot.free.memory_bytes, pod.requests.memory_bytes, slot.per_mille_memory))
        / 2;
    let free = i64::try_from(free).unwrap_or(1000);
    match placement {
        Placement::Spread => free,
        Placement::Pack => 1000 - free,
    }
}

/// `0/3 boards: 2 insufficient memory, 1 node selector mismatch`: most frequent reason first.
fn unschedulable(boards: usize, reasons: impl Iterator<Item = Misfit>) -> String {
    if boards == 0 {
        return "0/0 boards: no board has joined".to_owned();
    }
    let mut counts: BTreeMap<Misfit, usize> = BTreeMap::new();
    for reason in reasons {
        *counts.entry(reason).or_default() += 1;
    }
    let mut counts: Vec<(Misfit, usize)> = counts.into_iter().collect();
    counts.sort_by(|(a, n), (b, m)| m.cmp(n).then(a.cmp(b)));
    let parts: Vec<String> = counts.iter().map(|(reason, n)| format!("{n} {reason}")).collect();
    format!("0/{boards} boards: {}", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GI: u64 = 1 << 30;
    const MI: u64 = 1 << 20;

    fn board(name: &str, cpu_millis: u64, memory_bytes: u64) -> Board {
        Board {
            name: name.to_owned(),
            ready: true,
            labels: BTreeMap::from([
                (ARCH_LABEL.to_owned(), "arm64".to_owned()),
                (HOSTNAME_LABEL.to_owned(), name.to_owned()),
            ]),
            allocatable: Resources { cpu_millis, memory_bytes },
            ..Board::default()
        }
    }

    fn pods(owner: &str, n: usize, cpu_millis: u64, memory_bytes: u64) -> Vec<PodRequest> {
        (0..n)
            .map(|i| PodRequest {
                key: format!("default/{owner}-{i}"),
                owner: Some(format!("default/{owner}")),
                requests: Resources { cpu_millis, memory_bytes },
                ..PodRequest::default()
            })
            .collect()
    }

    /// Pods per board, in board name order.
    fn per_board(decisions: &[Decision]) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for d in decisions {
            if let Decision::Bind { board, .. } = d {
                *counts.entry(board.clone()).or_default() += 1;
            }
        }
        counts
    }

    fn pending(decisions: &[Decision]) -> Vec<&str> {
        decisions
            .iter()
            .filter_map(|d| match d {
                Decision::Pending { reason, .. } => Some(reason.as_str()),
                Decision::Bind { .. } => None,
            })
            .collect()
    }

    #[test]
    fn replicas_spread_evenly_over_equal_boards() {
        let boards = [board("a", 4000, 4 * GI), board("b", 4000, 4 * GI), board("c", 4000, 4 * GI)];
        for placement in [Placement::Spread, Placement::Pack] {
            let decisions = schedule(&pods("web", 6, 100, 64 * MI), &boards, placement);
            let counts: Vec<usize> = per_board(&decisions).into_values().collect();
            assert_eq!(counts, [2, 2, 2], "{placement:?}");
        }
    }

    #[test]
    fn replicas_already_running_count_towards_the_spread() {
        let mut boards = [board("a", 4000, 4 * GI), board("b", 4000, 4 * GI), board("c", 4000, 4 * GI)];
        boards[0].owners.insert("default/web".to_owned(), 3);
        boards[0].requested = Resources { cpu_millis: 300, memory_bytes: 192 * MI };
        let decisions = schedule(&pods("web", 3, 100, 64 * MI), &boards, Placement::Spread);
        assert_eq!(per_board(&decisions), BTreeMap::from([("b".to_owned(), 2), ("c".to_owned(), 1)]));
    }

    #[test]
    fn spread_evens_load_and_pack_fills_fewer_boards() {
        let boards = [board("a", 4000, 4 * GI), board("b", 4000, 4 * GI)];
        let two_apps: Vec<PodRequest> =
            pods("one", 1, 500, 256 * MI).into_iter().chain(pods("two", 1, 500, 256 * MI)).collect();
        let spread = schedule(&two_apps, &boards, Placement::Spread);
        assert_eq!(per_board(&spread).len(), 2, "{spread:?}");
        let pack = schedule(&two_apps, &boards, Placement::Pack);
        assert_eq!(per_board(&pack), BTreeMap::from([("a".to_owned(), 2)]), "{pack:?}");
    }

    #[test]
    fn requests_are_accounted_as_pods_are_placed() {
        let boards = [board("zero2", 1000, 512 * MI)];
        let decisions = schedule(&pods("web", 5, 250, 64 * MI), &boards, Placement::Spread);
        assert_eq!(per_board(&decisions)["zero2"], 4);
        assert_eq!(pending(&decisions), ["0/1 boards: 1 insufficient cpu"]);
    }

    #[test]
    fn unschedulable_pods_say_why_board_by_board() {
        let mut boards = [board("a", 4000, 512 * MI), board("b", 4000, 512 * MI), board("c", 4000, 8 * GI)];
        boards[2].labels.insert(ARCH_LABEL.to_owned(), "arm".to_owned());
        let mut pod = pods("big", 1, 100, GI).remove(0);
        pod.node_selector.insert(ARCH_LABEL.to_owned(), "arm64".to_owned());
        let decisions = schedule(&[pod], &boards, Placement::Spread);
        assert_eq!(pending(&decisions), ["0/3 boards: 2 insufficient memory, 1 node selector mismatch"]);

        let mut boards = [board("a", 4000, GI), board("b", 4000, GI)];
        boards[0].ready = false;
        boards[1].cordoned = true;
        let decisions = schedule(&pods("web", 1, 0, 0), &boards, Placement::Spread);
        assert_eq!(pending(&decisions), ["0/2 boards: 1 not ready, 1 cordoned"]);
        assert_eq!(
            pending(&schedule(&pods("web", 1, 0, 0), &[], Placement::Spread)),
            ["0/0 boards: no board has joined"]
        );
    }

    #[test]
    fn a_host_port_is_taken_once_per_board() {
        let boards = [board("a", 4000, 4 * GI), board("b", 4000, 4 * GI)];
        let port = HostPort { protocol: Protocol::Tcp, port: 8080 };
        let mut batch = pods("web", 3, 100, 64 * MI);
        for pod in &mut batch {
            pod.host_ports.push(port);
        }
        let decisions = schedule(&batch, &boards, Placement::Spread);
        assert_eq!(per_board(&decisions), BTreeMap::from([("a".to_owned(), 1), ("b".to_owned(), 1)]));
        assert_eq!(pending(&decisions), ["0/2 boards: 2 hostPort 8080/TCP in use"]);
        // The same port over UDP is another port.
        let mut udp = pods("dns", 1, 0, 0).remove(0);
        udp.host_ports.push(HostPort { protocol: Protocol::Udp, port: 8080 });
        let mut taken = boards.clone();
        taken[0].host_ports.insert(port);
        taken[1].host_ports.insert(port);
        assert!(pending(&schedule(&[udp], &taken, Placement::Spread)).is_empty());
    }

    #[test]
    fn the_same_input_gives_the_same_placements_whatever_the_board_order() {
        let boards = vec![
            board("pi-3", 4000, 2 * GI),
            board("pi-1", 4000, 4 * GI),
            board("pi-2", 4000, 4 * GI),
            board("zero", 1000, 512 * MI),
        ];
        let batch: Vec<PodRequest> =
            pods("web", 7, 300, 200 * MI).into_iter().chain(pods("db", 2, 1000, GI)).collect();
        let first = schedule(&batch, &boards, Placement::Spread);
        let mut reversed = boards.clone();
        reversed.reverse();
        assert_eq!(schedule(&batch, &reversed, Placement::Spread), first);
        assert_eq!(schedule(&batch, &boards, Placement::Spread), first);
    }

    #[test]
    fn a_pod_spec_asks_for_its_containers_requests_and_host_ports() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  nodeSelector: {kubernetes.io/arch: arm64}\n  containers:\n  - name: a\n    image: x\n    ports: [{containerPort: 80, hostPort: 8080}]\n    resources: {limits: {cpu: 250m, memory: 64Mi}}\n  - name: b\n    image: y\n    resources: {requests: {cpu: '0.5', memory: 1Gi}, limits: {cpu: '1'}}\n";
        let manifests = bramble_common::manifest::parse_manifests("p.yaml", text);
        let Some(bramble_common::Object::Pod(pod)) = manifests.objects.first().map(|o| &o.object) else {
            panic!("a pod: {:?}", manifests.errors);
        };
        let request = PodRequest::from_spec("default/p", None, &pod.spec);
        assert_eq!(request.requests, Resources { cpu_millis: 750, memory_bytes: 64 * MI + GI });
        assert_eq!(request.host_ports, [HostPort { protocol: Protocol::Tcp, port: 8080 }]);
        assert_eq!(request.node_selector.get(ARCH_LABEL).map(String::as_str), Some("arm64"));
    }
}
