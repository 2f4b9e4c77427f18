//! `report.html` in a real browser: headless Chromium renders the demo's report (plus one
//! instance whose region is markup). The DOM holds the three charts and the run's numbers, a
//! screenshot is not blank, and the page asks for nothing over the network. Also the terminal
//! table after the summary line. Chromium is required: `.ci/run` installs it, so a missing
//! browser fails the test rather than skipping it.

use crate::harness::{BIN, Ran, Test, copy_dir};
use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// An instance in no mainland region whose region is markup, and a request for it: it lands in
/// the region chart as a `not_required` request, escaped.
const HOSTILE_REGION: &str = "<script>alert(\"x\")</script> & co";
const HOSTILE_INSTANCE: &str = "i-hostile00000001,hostile,1587362049118823,\
    \"<script>alert(\"\"x\"\")</script> & co\",PrePaid,2027-09-14T16:00Z,2024-09-28T01:14Z,\
    Running,5,47.96.52.1,,\n";
const HOSTILE_REQUEST: &str =
    "REQ-20261129-9999,1587362049118823,i-hostile00000001,2026-11-29T10:00:00+08:00\n";

/// The demo with the hostile instance, run as of the demo's date; the report is `out/`, and
/// the input ledger is left as it was.
fn demo_report(name: &str) -> Ran {
    let test = Test::new(name);
    let input = test.dir.join("in");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/demo"),
        &input,
    );
    append(&input.join("instances.csv"), HOSTILE_INSTANCE);
    append(&input.join("requests.csv"), HOSTILE_REQUEST);
    test.args([
        "run",
        "--input",
        "in",
        "--out",
        "out",
        "--ledger-out",
        "ledger-after.csv",
        "--as-of",
        "2026-11-30T00:00:00Z",
    ])
    .run()
    .expect(0)
}

fn append(path: &Path, text: &str) {
    let mut all = fs::read_to_string(path).unwrap();
    all.push_str(text);
    fs::write(path, all).unwrap();
}

/// The `chromium` on the PATH; its absence is a failure (`.ci/run` installs it).
fn chromium() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("chromium"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "headless Chromium is needed to test report.html and was not found on PATH: \
                 install the Debian package `chromium` (`apt-get update && apt-get install -y \
                 chromium`; .ci/run does this)"
            )
        })
}

/// Runs headless Chromium on `page` with `args` in a fresh profile under `dir`; returns its
/// stdout. Name resolution is mapped to nowhere, so nothing leaves the machine even if asked
/// for; the net log still records every attempt.
fn browse(dir: &Path, tag: &str, page: &Path, args: &[String]) -> String {
    let profile = dir.join(format!("chromium-profile-{tag}"));
    let _ = fs::remove_dir_all(&profile);
    let stdout = dir.join(format!("chromium-{tag}.out"));
    let stderr = dir.join(format!("chromium-{tag}.err"));
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--host-resolver-rules=MAP * ~NOTFOUND",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(file_url(page))
        .stdin(Stdio::null())
        .stdout(fs::File::create(&stdout).unwrap())
        .stderr(fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start chromium: {e}"));
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 120 s on {}", page.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let err = fs::read_to_string(&stderr).unwrap_or_default();
    assert!(status.success(), "chromium failed ({status}):\n{err}");
    fs::read_to_string(&stdout).unwrap()
}

fn file_url(page: &Path) -> String {
    format!("file://{}", fs::canonicalize(page).unwrap().display())
}

/// The text of the first element that starts with `open`, up to its `close`.
fn element<'a>(dom: &'a str, open: &str, close: &str) -> &'a str {
    let start = dom
        .find(open)
        .unwrap_or_else(|| panic!("no `{open}` in the rendered page"));
    let len = dom[start..].find(close).expect("element is closed") + close.len();
    &dom[start..start + len]
}

#[test]
fn report_renders_in_chromium_with_its_charts_and_numbers() {
    let ran = demo_report("report-dom");
    let page = ran.dir.join("out/report.html");
    let dom = browse(&ran.dir, "dom", &page, &["--dump-dom".to_string()]);
    let want = [
        (
            "outcomes",
            &[
                "issued: 42",
                "eligible: 0",
                "already_issued: 3",
                "not_required: 5",
                "denied: 21",
                "invalid: 10",
            ][..],
        ),
        (
            "rules",
            &[
                "instance-exists: 2",
                "owner-account: 4",
                "mainland-region: 5",
                "not-expired: 5",
                "max-codes-per-instance: 3",
                "malformed-request: 3",
                "request-id-conflict: 1",
            ][..],
        ),
        (
            "regions",
            &[
                "cn-hangzhou: 4",
                "(no instance): 2",
                "cn-hongkong: 1",
                "&lt;script&gt;alert(\"x\")&lt;/script&gt; &amp; co: 1",
            ][..],
        ),
    ];
    for (chart, titles) in want {
        let svg = element(&dom, &format!("<svg class=\"chart {chart}\""), "</svg>");
        assert!(svg.matches("<rect").count() > 0, "{chart}: no <rect>");
        assert!(
            svg.matches("<rect class=\"bar\"").count() > 0,
            "{chart}: no bar"
        );
        for title in titles {
            assert!(
                svg.contains(&format!("<title>{title}</title>")),
                "{chart}: no bar `{title}` in\n{svg}"
            );
        }
    }
    // The header names the run and its inputs.
    let requests_sha = sha256_hex(&fs::read(ran.dir.join("in/requests.csv")).unwrap());
    for fact in [
        "2026-11-30T00:00:00Z",
        "icp-service-code",
        // No --policy: the policy compiled in, not a file of that name where the run is.
        "built-in (policies/icp-service-code.yaml)",
        "in/requests.csv",
        &requests_sha,
        "40 before, 82 after",
        concat!("icp-audit ", env!("CARGO_PKG_VERSION")),
        "81 requests, one decision each.",
        "No waivers were given for this run.",
    ] {
        assert!(dom.contains(fact), "the page lacks `{fact}`");
    }
    // Totals per outcome, and remedies with what they would unblock and address.
    assert!(dom.contains("<div class=\"num\">42</div><div class=\"name\">issued</div>"));
    let remedies = element(&dom, "<table class=\"remedies\"", "</table>");
    for (remedy, unblocks, refusals) in [
        ("Apply with the account that purchased the instance.", 4, 4),
        (
            "Renew the subscription so that at least three months remain.",
            2,
            5,
        ),
        (
            "Buy Internet bandwidth for the instance, or attach an EIP.",
            1,
            5,
        ),
    ] {
        let row = format!(
            "<td>{remedy}</td><td class=\"n\">{unblocks}</td><td class=\"n\">{refusals}</td>"
        );
        assert!(remedies.contains(&row), "no `{row}` in\n{remedies}");
    }
    // The markup in the data stayed text.
    assert!(!dom.contains("<script"), "a <script> element was rendered");
    let as_text = HOSTILE_REGION
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    assert!(
        dom.contains(&as_text),
        "the hostile region is not shown as text"
    );
}

#[test]
fn report_screenshot_is_not_blank() {
    let ran = demo_report("report-screenshot");
    let png = ran.dir.join("report.png");
    let page = ran.dir.join("out/report.html");
    browse(
        &ran.dir,
        "screenshot",
        &page,
        &[
            format!("--screenshot={}", png.display()),
            "--window-size=1280,2000".to_string(),
        ],
    );
    let (width, height, pixels) = decode_rgb(&png);
    assert_eq!((width, height), (1280, 2000));
    let colours: HashSet<[u8; 3]> = pixels.iter().copied().collect();
    assert!(colours.len() > 1, "the screenshot is one colour");
    // The banner (CSS) and the denied bars (SVG) were painted.
    for (what, rgb) in [
        ("banner", [0x0b, 0x3d, 0x91]),
        ("denied bar", [0xc6, 0x28, 0x28]),
    ] {
        assert!(
            colours.iter().any(|c| near(*c, rgb)),
            "no {what} colour in {}",
            png.display()
        );
    }
}

/// A PNG's size and pixels as RGB.
fn decode_rgb(path: &Path) -> (u32, u32, Vec<[u8; 3]>) {
    let file = std::io::BufReader::new(fs::File::open(path).unwrap());
    let mut decoder = png::Decoder::new(file);
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let step = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => panic!("unexpected PNG colour type {other:?}"),
    };
    let pixels = buf[..info.buffer_size()]
        .chunks_exact(step)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    (info.width, info.height, pixels)
}

fn near(a: [u8; 3], b: [u8; 3]) -> bool {
    a.iter().zip(b).all(|(x, y)| x.abs_diff(y) <= 6)
}

#[test]
fn report_makes_no_network_request() {
    let ran = demo_report("report-offline");
    let page = ran.dir.join("out/report.html");
    // The page itself references nothing outside it.
    let html = fs::read_to_string(&page).unwrap();
    for banned in [
        "http://",
        "https://",
        "<script",
        "<link",
        "<img",
        "<iframe",
        "<object",
        "<embed",
        "@import",
        "url(",
        " src=",
        " href=",
        "http-equiv",
    ] {
        assert!(
            !html.to_ascii_lowercase().contains(banned),
            "report.html contains `{banned}`"
        );
    }
    // And Chromium, loading it, asked the network for nothing on its behalf. The net log also
    // holds the browser's own background requests (network time, updater, accounts); those
    // have no initiating origin, while a page's requests carry the page's origin (`null` for
    // file://) and a file:// isolation key. A control page shows the check sees them.
    let control = ran.dir.join("control.html");
    fs::write(
        &control,
        "<!doctype html><html><head><link rel=\"stylesheet\" href=\"http://probe.invalid/a.css\">\
         </head><body><img src=\"https://probe.invalid/b.png\" alt=\"\">control</body></html>",
    )
    .unwrap();
    let from_control = page_requests(&ran.dir, "control", &control);
    for url in ["http://probe.invalid/a.css", "https://probe.invalid/b.png"] {
        assert!(
            from_control.iter().any(|u| u == url),
            "the net log check missed the control page's request for {url}: {from_control:?}"
        );
    }
    let from_report = page_requests(&ran.dir, "report", &page);
    assert!(
        from_report.is_empty(),
        "report.html made network requests: {from_report:?}"
    );
}

/// The URLs the page asked the network for, from Chromium's net log.
fn page_requests(dir: &Path, tag: &str, page: &Path) -> Vec<String> {
    let log = dir.join(format!("netlog-{tag}.json"));
    browse(
        dir,
        tag,
        page,
        &[
            format!("--log-net-log={}", log.display()),
            "--dump-dom".to_string(),
        ],
    );
    let log: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&log).unwrap()).expect("the net log is JSON");
    let start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
        .as_u64()
        .expect("the net log names its event types");
    let mut urls = Vec::new();
    for event in log["events"].as_array().expect("net log events") {
        let params = &event["params"];
        if event["type"].as_u64() != Some(start_job) || params["url"].is_null() {
            continue;
        }
        let initiator = params["initiator"].as_str().unwrap_or("");
        let isolation = params["network_isolation_key"].as_str().unwrap_or("");
        if initiator != "not an origin" || isolation.contains("file://") {
            urls.push(params["url"].as_str().unwrap_or("").to_string());
        }
    }
    urls
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// On a terminal, the summary line is followed by the outcome table and the top reasons; in a
/// log (stdout not a terminal) there is only the summary line; `--quiet` prints nothing.
#[test]
fn terminal_gets_the_table_and_a_log_only_the_summary_line() {
    let ran = demo_report("report-terminal");
    let out = ran.stdout();
    assert_eq!(out.lines().count(), 1, "a log gets one line:\n{out}");
    assert!(out.starts_with("icp-audit: 81 requests"), "{out}");

    let script = Path::new("/usr/bin/script");
    if !script.is_file() {
        // A note for whoever runs the tests.
        #[allow(clippy::print_stderr)]
        {
            eprintln!("note: `script` is not installed; the terminal table is unit-tested only");
        }
        return;
    }
    let on_terminal = |extra: &str| {
        // A new ledger of its own each time: a run refuses to replace one an earlier run
        // wrote, whose codes the input ledger lacks.
        let command = format!(
            "'{BIN}' run --input in --out out2 --ledger-out out2/ledger-{}.csv \
             --as-of 2026-11-30T00:00:00Z {extra}",
            extra.len()
        );
        let output = Command::new(script)
            .args(["-qec", &command, "/dev/null"])
            .current_dir(&ran.dir)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        // Columns are aligned with spaces; compare words.
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
            .join("\n")
    };
    fs::create_dir_all(ran.dir.join("out2")).unwrap();
    let shown = on_terminal("");
    for line in [
        "icp-audit: 81 requests as of 2026-11-30T00:00:00Z",
        "\noutcome requests\n",
        "\nissued 42 51.9%\n",
        "\nnot_required 5 6.2%\n",
        "\ntotal 81 100.0%\n",
        "\ntop reasons requests\n",
        "\nmainland-region 5\n",
        "\noutputs in out2",
    ] {
        assert!(
            shown.contains(line),
            "no `{line}` on the terminal:\n{shown}"
        );
    }
    let quiet = on_terminal("--quiet");
    assert!(!quiet.contains("outcome"), "--quiet printed:\n{quiet}");
}

/// A request refused by the owner gate on an inventory row without a region (a damaged row:
/// the gate decides before its damage is told) is charted under `(no region)`, not as a bar
/// without a name.
#[test]
fn a_refusal_on_a_row_without_a_region_is_charted_as_no_region() {
    let ran = Test::new("report-no-region")
        .file(
            "instances.csv",
            "instance_id,account_id,region_id,charge_type,expired_time,internet_max_bandwidth_out,public_ip\n\
             i-noreg,111,,PrePaid,2028-01-01,5,47.1.1.1\n",
        )
        .file(
            "requests.csv",
            "request_id,account_id,instance_id,requested_at\nr1,222,i-noreg,2026-11-29\n",
        )
        .args(crate::harness::RUN)
        .args(["--dry-run"])
        .run()
        .expect(0);
    assert_eq!(
        crate::harness::outcomes(&ran),
        crate::harness::pairs([("denied", "owner-account")])
    );
    let page = ran.read("out/report.html");
    assert!(page.contains("<title>(no region): 1</title>"), "{page}");
    assert!(!page.contains("<title>: 1</title>"), "a bar without a name");
}
