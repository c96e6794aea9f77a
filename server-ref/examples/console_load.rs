//! Render speed of the admin console at scale (issue 23: "the overview and a license page
//! render in under 100 ms of server time with 100,000 licenses and 1,000,000 lease rows").
//!
//! Starts a real `licensing-server serve` on 127.0.0.1 with a temporary data directory
//! (SQLite; PostgreSQL when `LICENSING_LOAD_DATABASE_URL` names one), fills one organization
//! with `--licenses` floating licenses (100 000) and `--leases` lease rows (1 000 000) and
//! denials over the last 60 days, signs in to the console (the setup form, a real session
//! cookie), and times `--renders` renders (50) each of the overview (`/console/`) and of the
//! license page of the busiest license (`--live` live leases, 1 000, and a tenth of all lease
//! rows), one at a time on one keep-alive connection: the time from the request's first byte
//! sent to the answer's last byte read on 127.0.0.1, which is the server's time plus a loopback
//! round trip. Prints p50, p95 and max.
//!
//! The product, the policies and two licenses are made through the admin API; the other
//! licenses are copies of one of them (same claims and token, their own id and key hash) and
//! the leases and denials are bulk SQL inserts straight into the server's database (a few
//! hundred bound values per statement, one transaction per 50 statements): through the API the
//! fill would take hours. Live leases end 3 hours after the fill, so none lapses during a run.
//!
//! ```text
//! cargo build --release -p licensing-server --bins --example console_load
//! target/release/examples/console_load [--licenses 100000] [--leases 1000000] [--renders 50]
//! LICENSING_LOAD_DATABASE_URL=postgres://... target/release/examples/console_load
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;
use sqlx::AnyPool;
use support::{Conn, arg, percentile, start_server};

/// Rows per INSERT statement (each row binds 5 to 14 values: a few hundred per statement,
/// under SQLite's and PostgreSQL's limits on bound parameters).
const ROWS_PER_INSERT: usize = 25;
/// Statements per transaction.
const INSERTS_PER_TX: usize = 50;
const DAY: i64 = 86_400;
/// Denials per 1 000 lease rows.
const DENIALS_PER_MILLE: u64 = 20;

fn main() {
    let licenses = arg("--licenses", 100_000).max(3);
    let leases = arg("--leases", 1_000_000).max(10);
    let renders = arg("--renders", 50).max(1) as usize;
    let big_live = arg("--live", 1_000).clamp(1, 100_000);
    let dir = tempfile::tempdir().unwrap();
    let database = std::env::var("LICENSING_LOAD_DATABASE_URL").ok();
    let mut extra = vec![];
    if let Some(url) = &database {
        extra.extend(["--database-url", url.as_str()]);
    }
    let data = dir.path().join("data");
    let server = start_server(&data, &extra);
    let engine = if database.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    let db_url = database
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}?mode=rw", data.join("licensing.db").display()));
    let mut conn = Conn::open(&server.addr);
    let admin = Some(server.admin.as_str());

    // The catalog and two licenses through the API: the busy one, and the one the others copy.
    let (status, body) = conn.call(
        "POST",
        "/v1/products",
        admin,
        Some(&json!({ "id": "com.example.console-load", "name": "Console load" })),
    );
    assert_eq!(status, 201, "{body}");
    let policy = |conn: &mut Conn, name: &str, seats: u64| {
        let (status, policy) = conn.call(
            "POST",
            "/v1/policies",
            admin,
            Some(
                &json!({ "product_id": "com.example.console-load", "name": name,
                          "model": "floating", "seats": seats, "duration": 400 * DAY }),
            ),
        );
        assert_eq!(status, 201, "{policy}");
        policy["id"].as_str().unwrap().to_owned()
    };
    let big_policy = policy(&mut conn, "site", big_live);
    let small_policy = policy(&mut conn, "team", 10);
    let license = |conn: &mut Conn, policy: &str| {
        let (status, license) = conn.call(
            "POST",
            "/v1/licenses",
            admin,
            Some(&json!({ "policy_id": policy })),
        );
        assert_eq!(status, 201, "{license}");
        license["id"].as_str().unwrap().to_owned()
    };
    let big = license(&mut conn, &big_policy);
    let template = license(&mut conn, &small_policy);

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let filled = runtime.block_on(fill(
        &db_url, &big, &template, licenses, leases, big_live, now,
    ));
    println!(
        "{engine}: filled {} licenses, {} lease rows ({} live), {} denials in {:.1} s",
        filled.licenses,
        filled.leases,
        filled.live,
        filled.denials,
        started.elapsed().as_secs_f64()
    );

    // A console session, as a browser gets one: the setup form with its pre-session cookie.
    let mut browser = Browser::open(&server.addr);
    let (status, headers, page) = browser.get("/console/setup", None);
    assert_eq!(status, 200, "{page}");
    let pre = cookie(&headers, "lic_pre").expect("the setup page sets lic_pre");
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the setup form's csrf")
        .to_owned();
    let form = format!(
        "csrf={csrf}&token={}&user_name=load&password=correct+horse+battery+staple",
        server.admin
    );
    let (status, headers, page) =
        browser.post_form("/console/setup", &format!("lic_pre={pre}"), &form);
    assert_eq!(status, 303, "{page}");
    let session = cookie(&headers, "lic_session").expect("the setup signs in");
    let session = format!("lic_session={session}");

    // Warm up (the first render compiles nothing, but fills the database's caches), then time.
    let overview = |browser: &mut Browser| {
        let (status, _, page) = browser.get("/console/", Some(&session));
        assert_eq!(status, 200, "{page}");
        assert!(page.contains("data-total="), "{page}");
        page
    };
    let license_path = format!("/console/licenses/{big}");
    let license_page = |browser: &mut Browser| {
        let (status, _, page) = browser.get(&license_path, Some(&session));
        assert_eq!(status, 200, "{page}");
        page
    };
    let page = overview(&mut browser);
    let checked = page
        .split("license(s).")
        .next()
        .and_then(|s| s.rsplit("over ").next())
        .unwrap_or("?")
        .to_owned();
    println!(
        "overview: {} bytes, alerts over {checked} license(s)",
        page.len()
    );
    let page = license_page(&mut browser);
    let shown = page.matches("data-lease=").count();
    assert_eq!(
        shown as u64, big_live,
        "the license page lists every live lease"
    );
    println!(
        "license page: {} bytes, {shown} live leases listed",
        page.len()
    );

    for (name, path) in [
        ("GET /console/ (overview)", "/console/".to_owned()),
        (
            "GET /console/licenses/{id} (the busiest license)",
            license_path.clone(),
        ),
    ] {
        let mut times = Vec::with_capacity(renders);
        for _ in 0..renders {
            let start = Instant::now();
            let (status, _, body) = browser.get(&path, Some(&session));
            times.push(start.elapsed());
            assert_eq!(status, 200, "{body}");
        }
        times.sort_unstable();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "{engine}, {licenses} licenses, {leases} lease rows: {name}: {renders} renders, \
             p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms",
            ms(percentile(&times, 0.50)),
            ms(percentile(&times, 0.95)),
            ms(*times.last().unwrap()),
        );
    }
}

/// What the fill inserted.
struct Filled {
    licenses: u64,
    leases: u64,
    live: u64,
    denials: u64,
}

/// SplitMix64: a spread, repeatable pseudo-random number for `n`.
fn mix(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `INSERT INTO {head} VALUES (...), (...)` for `rows` rows of `width` values each.
fn insert(head: &str, rows: usize, width: usize) -> String {
    let mut sql = format!("INSERT INTO {head} VALUES ");
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..width {
            if c > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("${}", r * width + c + 1));
        }
        sql.push(')');
    }
    sql
}

type TemplateRow = (
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<i64>,
);

/// One lease row: id, license, client, created, heartbeat, expires, released, reason.
type LeaseRow = (
    String,
    String,
    String,
    i64,
    i64,
    i64,
    Option<i64>,
    Option<&'static str>,
);

async fn fill(
    url: &str,
    big: &str,
    template: &str,
    licenses: u64,
    leases: u64,
    big_live: u64,
    now: i64,
) -> Filled {
    sqlx::any::install_default_drivers();
    let pool = AnyPool::connect(url).await.unwrap();
    let (organization, product, policy, key_hint, claims, token, expires_at): TemplateRow =
        sqlx::query_as(
            "SELECT organization_id, product_id, policy_id, key_hint, claims, token, expires_at \
             FROM licenses WHERE id = $1",
        )
        .bind(template)
        .fetch_one(&pool)
        .await
        .unwrap();

    // The licenses: copies of the template, created over the last two years; 3 % suspended,
    // 1 % revoked.
    let copies = licenses - 2;
    let ids: Vec<String> = (0..copies).map(|n| format!("lic_load{n:08}")).collect();
    let mut tx = pool.begin().await.unwrap();
    for (batch, chunk) in ids.chunks(ROWS_PER_INSERT).enumerate() {
        let sql = insert(
            "licenses (id, organization_id, key_hash, key_hint, product_id, policy_id, status, \
             claims, token, expires_at, created_at, updated_at)",
            chunk.len(),
            12,
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (k, id) in chunk.iter().enumerate() {
            let r = mix((batch * ROWS_PER_INSERT + k) as u64);
            let status = match r % 100 {
                0..=2 => "suspended",
                3 => "revoked",
                _ => "active",
            };
            let created = now - 730 * DAY + (r % (700 * DAY as u64)) as i64;
            q = q
                .bind(id.clone())
                .bind(organization.clone())
                .bind(format!("{:064x}", mix(r)))
                .bind(key_hint.clone())
                .bind(product.clone())
                .bind(policy.clone())
                .bind(status)
                .bind(claims.clone())
                .bind(token.clone())
                .bind(expires_at)
                .bind(created)
                .bind(created);
        }
        q.execute(&mut *tx).await.unwrap();
        if (batch + 1) % INSERTS_PER_TX == 0 {
            tx.commit().await.unwrap();
            tx = pool.begin().await.unwrap();
        }
    }
    tx.commit().await.unwrap();

    // The leases: a tenth on the busy license (`big_live` of them live), the rest spread over
    // the copies (about one in twenty live); the ended ones over the last 60 days.
    let on_big = (leases / 10).max(big_live);
    let mut live = 0;
    let mut rows: Vec<LeaseRow> = Vec::with_capacity(ROWS_PER_INSERT);
    let mut tx = pool.begin().await.unwrap();
    let mut statements = 0;
    for n in 0..leases {
        let r = mix(n);
        let (license, is_live) = if n < on_big {
            (big.to_owned(), n < big_live)
        } else {
            (ids[(r % copies) as usize].clone(), r.is_multiple_of(20))
        };
        let client = format!("client-{:05}", (r >> 20) % 20_000);
        let row = if is_live {
            live += 1;
            let created = now - (r % 3600) as i64;
            (
                format!("lea_load{n:08}"),
                license,
                client,
                created,
                now,
                now + 3 * 3600,
                None,
                None,
            )
        } else {
            let created = now - 60 * DAY + ((r >> 8) % (60 * DAY as u64 - 7200)) as i64;
            let released = created + 60 + ((r >> 4) % 28_800) as i64;
            let reason = if r.is_multiple_of(7) {
                "expired"
            } else {
                "checked_in"
            };
            (
                format!("lea_load{n:08}"),
                license,
                client,
                created,
                released,
                released + 900,
                Some(released),
                Some(reason),
            )
        };
        rows.push(row);
        if rows.len() == ROWS_PER_INSERT || n + 1 == leases {
            let sql = insert(
                "leases (id, license_id, client_id, user_name, request_id, epoch, created_at, \
                 heartbeat_at, expires_at, released_at, release_reason)",
                rows.len(),
                11,
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (id, license, client, created, heartbeat, expires, released, reason) in
                rows.drain(..)
            {
                q = q
                    .bind(id.clone())
                    .bind(license)
                    .bind(client.clone())
                    .bind(client)
                    .bind(id)
                    .bind(1_i64)
                    .bind(created)
                    .bind(heartbeat)
                    .bind(expires)
                    .bind(released)
                    .bind(reason);
            }
            q.execute(&mut *tx).await.unwrap();
            statements += 1;
            if statements % INSERTS_PER_TX == 0 {
                tx.commit().await.unwrap();
                tx = pool.begin().await.unwrap();
            }
        }
    }
    tx.commit().await.unwrap();
    // The licenses' counts of held leases, as check-outs keep them.
    sqlx::query(
        "UPDATE licenses SET leases_held = (SELECT COUNT(*) FROM leases \
         WHERE leases.license_id = licenses.id AND released_at IS NULL) \
         WHERE id IN (SELECT DISTINCT license_id FROM leases WHERE released_at IS NULL)",
    )
    .execute(&pool)
    .await
    .unwrap();

    // Denials over the last 60 days: a tenth on the busy license.
    let denials = leases * DENIALS_PER_MILLE / 1000;
    let mut tx = pool.begin().await.unwrap();
    let mut n = 0;
    while n < denials {
        let count = ROWS_PER_INSERT.min((denials - n) as usize);
        let sql = insert(
            "denials (id, license_id, client_id, user_name, at)",
            count,
            5,
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for k in n..n + count as u64 {
            let r = mix(k ^ 0xD15E);
            let license = if k % 10 == 0 {
                big.to_owned()
            } else {
                ids[(r % copies) as usize].clone()
            };
            let client = format!("client-{:05}", (r >> 20) % 20_000);
            q = q
                .bind(format!("den_load{k:08}"))
                .bind(license)
                .bind(client.clone())
                .bind(client)
                .bind(now - ((r >> 8) % (60 * DAY as u64 - 60)) as i64);
        }
        q.execute(&mut *tx).await.unwrap();
        n += count as u64;
    }
    tx.commit().await.unwrap();
    pool.close().await;
    Filled {
        licenses,
        leases,
        live,
        denials,
    }
}

/// The named cookie's value among `Set-Cookie` headers.
fn cookie(headers: &[(String, String)], name: &str) -> Option<String> {
    headers
        .iter()
        .filter(|(h, _)| h.eq_ignore_ascii_case("set-cookie"))
        .find_map(|(_, v)| {
            v.split(';')
                .next()?
                .trim()
                .strip_prefix(&format!("{name}="))
                .map(str::to_owned)
        })
}

/// A keep-alive HTTP/1.1 connection that sends cookies and forms and reads headers.
struct Browser {
    reader: BufReader<TcpStream>,
    addr: String,
}

impl Browser {
    fn open(addr: &str) -> Browser {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_nodelay(true).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        Browser {
            reader: BufReader::new(stream),
            addr: addr.to_owned(),
        }
    }

    fn get(&mut self, path: &str, cookie: Option<&str>) -> (u16, Vec<(String, String)>, String) {
        let mut head = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n", self.addr);
        if let Some(cookie) = cookie {
            head.push_str(&format!("Cookie: {cookie}\r\n"));
        }
        head.push_str("\r\n");
        self.exchange(&head)
    }

    fn post_form(
        &mut self,
        path: &str,
        cookie: &str,
        form: &str,
    ) -> (u16, Vec<(String, String)>, String) {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nCookie: {cookie}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
            self.addr,
            form.len()
        );
        self.exchange(&head)
    }

    fn exchange(&mut self, request: &str) -> (u16, Vec<(String, String)>, String) {
        self.reader.get_mut().write_all(request.as_bytes()).unwrap();
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        let status: u16 = line.split(' ').nth(1).unwrap().parse().unwrap();
        let mut headers = Vec::new();
        let mut length = 0;
        loop {
            line.clear();
            self.reader.read_line(&mut line).unwrap();
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap();
                }
                headers.push((name.to_owned(), value.trim().to_owned()));
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).unwrap();
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    }
}
