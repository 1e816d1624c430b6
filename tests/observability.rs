//! What operators watch: every query of the Grafana dashboard, evaluated by a real Prometheus
//! (Debian's `prometheus`) that scrapes a dotgate under load; `promtool check metrics` on a
//! scrape; and the alert rules through `promtool check rules` and their unit tests.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;
use support::http::{get, try_get};
use support::ports::free_addr;
use support::process::TestProcess;
use support::{query, DotClient, Dotgate, FakeBackend};

const REPO: &str = env!("CARGO_MANIFEST_DIR");

fn tool(name: &str) -> Command {
    let found = Command::new("sh").args(["-c", &format!("command -v {name}")]).output().unwrap().status.success();
    assert!(found, "{name} is not installed: run scripts/install-deps.sh (Debian package prometheus)");
    Command::new(name)
}

/// Percent-encodes a query-string value.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Keeps a few DoT clients asking, some answered SERVFAIL, until `stop`.
fn load(addr: SocketAddr, stop: Arc<AtomicBool>) -> Vec<tokio::task::JoinHandle<()>> {
    (0..4u16)
        .map(|lane| {
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut n = 0u16;
                while !stop.load(Ordering::Relaxed) {
                    let Ok(mut client) = DotClient::connect(addr).await else { continue };
                    for _ in 0..20 {
                        n = n.wrapping_add(1);
                        let name = if n % 10 == 0 {
                            format!("servfail.l{lane}.example.")
                        } else {
                            format!("q{n}.l{lane}.example.")
                        };
                        client.exchange(&query(&name, RecordType::A, n)).await;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        })
        .collect()
}

/// dotgate with /metrics on a free address, and the private-subdomain gateway on in front of a
/// BIND of its own (so that the gateway's series are there too: the dashboard has a row for
/// them). The BIND and the files live as long as the returned guard.
fn start_dotgate(backend: SocketAddr) -> (Dotgate, SocketAddr, (support::Bind, tempfile::TempDir)) {
    let admin = free_addr();
    let admin_arg = admin.to_string();
    let bind = support::Bind::start_pvt();
    let dir = tempfile::tempdir().unwrap();
    let provider = dir.path().join("provider.key");
    dotgate::frontend::pvt::keys::KeyPair::generate().write_file(&provider).unwrap();
    let enrollment = dir.path().join("enrolled");
    std::fs::write(&enrollment, "").unwrap();
    let dotgate = Dotgate::start(
        &[backend],
        &[
            "--workers",
            "2",
            "--admin",
            &admin_arg,
            "--pvt-zone",
            support::bind::PVT_ZONE_NAME,
            "--pvt-primary",
            &bind.addr.to_string(),
            "--pvt-tsig-key",
            bind.pvt_tsig_key_file().to_str().unwrap(),
            "--pvt-provider-key",
            provider.to_str().unwrap(),
            "--pvt-enrollment",
            enrollment.to_str().unwrap(),
        ],
    );
    (dotgate, admin, (bind, dir))
}

/// What the dashboard shows of the access controls (allow/deny, per-client rate limits): a
/// dotgate without them exports none of these series, so their queries have no data there.
const ACCESS_CONTROL_SERIES: [&str; 2] = ["dotgate_rate_limited_total", r#"reason=~"acl|rate_limit""#];

/// Whether this dotgate has the access controls (its --help names --max-qps-per-client). With
/// them, their panels must return data like every other.
fn has_access_controls() -> bool {
    let out = Command::new(support::dotgate::DOTGATE_BIN).arg("--help").output().unwrap();
    String::from_utf8_lossy(&out.stdout).contains("--max-qps-per-client")
}

/// Prometheus's answer to an instant query: the number of series, or the error.
fn instant_query(prometheus: SocketAddr, expr: &str) -> Result<usize, String> {
    let (status, body) =
        try_get(prometheus, &format!("/api/v1/query?query={}", encode(expr))).map_err(|e| e.to_string())?;
    let json: serde_json::Value = serde_json::from_str(&body).map_err(|e| format!("HTTP {status}: {e}: {body}"))?;
    if json["status"] != "success" {
        return Err(format!("HTTP {status}: {body}"));
    }
    Ok(json["data"]["result"].as_array().map_or(0, Vec::len))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_returns_data_from_a_real_prometheus() {
    let backend = FakeBackend::start().await;
    let (dotgate, admin, _pvt) = start_dotgate(backend.addr);
    let stop = Arc::new(AtomicBool::new(false));
    let clients = load(dotgate.addr, stop.clone());

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: dotgate\n    static_configs:\n      - targets: ['{admin}']\n"
        ),
    )
    .unwrap();
    let web = free_addr();
    let mut cmd = tool("prometheus");
    cmd.arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
        .arg(format!("--web.listen-address={web}"))
        .current_dir(dir.path());
    let mut prometheus = TestProcess::spawn("prometheus", cmd);

    // Ready, and a few scrapes in: rates need two samples in their window.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let enough = instant_query(web, "count_over_time(dotgate_queries_received_total[1m]) >= 5").unwrap_or(0) > 0;
        if enough {
            break;
        }
        if Instant::now() > deadline {
            prometheus.kill();
            panic!("Prometheus never got five scrapes of {admin}: {}", prometheus.describe());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(Path::new(REPO).join("grafana/dotgate.json")).unwrap()).unwrap();
    let mut failures = Vec::new();
    let mut checked = 0;
    let access_controls = has_access_controls();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            // What Grafana puts in for its variables: a rate window of a few scrapes, every instance.
            let expr = expr.replace("$__rate_interval", "10s").replace("$instance", ".*");
            checked += 1;
            match instant_query(web, &expr) {
                Ok(0) if !access_controls && ACCESS_CONTROL_SERIES.iter().any(|s| expr.contains(s)) => {
                    eprintln!("{}: no data, as expected of a dotgate without access controls: {expr}", panel["title"])
                }
                Ok(0) => failures.push(format!("{}: no data: {expr}", panel["title"])),
                Ok(_) => {}
                Err(e) => failures.push(format!("{}: {e}: {expr}", panel["title"])),
            }
        }
    }
    // The instance picker's query too.
    let (_, values) = get(web, "/api/v1/label/instance/values?match[]=dotgate_build_info");
    if !values.contains(&admin.to_string()) {
        failures.push(format!("the $instance variable finds no instance: {values}"));
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        let _ = client.await;
    }
    assert!(checked >= 20, "only {checked} queries in the dashboard");
    assert!(failures.is_empty(), "{} of {checked} dashboard queries failed:\n{}", failures.len(), failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_passes_promtool_check_metrics() {
    let backend = FakeBackend::start().await;
    let (dotgate, admin, _pvt) = start_dotgate(backend.addr);
    let mut client = DotClient::connect(dotgate.addr).await.unwrap();
    client.exchange(&query("lint.example.", RecordType::A, 1)).await;
    let (status, page) = get(admin, "/metrics");
    assert_eq!(status, 200);
    let mut check = tool("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    check.stdin.take().unwrap().write_all(page.as_bytes()).unwrap();
    let out = check.wait_with_output().unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && report.trim().is_empty(), "promtool check metrics: {report}\n{page}");
}

#[test]
fn alert_rules_pass_promtool_check_and_their_unit_tests() {
    let dir = Path::new(REPO).join("deploy/prometheus");
    for args in [["check", "rules", "alerts.yaml"], ["test", "rules", "alerts_test.yaml"]] {
        let out = tool("promtool").args(args).current_dir(&dir).output().unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
