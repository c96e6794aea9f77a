//! `licensing-server gdpr export | erase` on a server's database, on SQLite and (under
//! scripts/with-postgres.sh) PostgreSQL: the export by user name or id, on stdout or in a new
//! 0600 file; the erasure only with `--yes`, idempotent, recorded in the audit trail by the
//! user's id with the chain intact; the exit codes (0 done, 1 no such user, 2 usage errors).
// `Server`'s Drop kills and waits for the child, which clippy cannot see.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::zombie_processes)]

use std::path::Path;
use std::process::Output;

use serde_json::Value;

mod support;
use backend::{Backend, on_both, temp_data};
use online_server::Server;
use support::cli::{cli, database_url, sql, stderr};
use support::{backend, online_server};

/// `licensing-server gdpr <args> --data-dir DATA [--database-url URL]`.
fn gdpr(data: &Path, backend: &Backend, args: &[&str]) -> Output {
    let mut all = vec!["gdpr"];
    all.extend(args);
    all.extend(["--data-dir", data.to_str().unwrap()]);
    all.extend(backend.args());
    cli(&all)
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(out)))
}

#[test]
fn gdpr_export_and_erase_from_the_command_line() {
    on_both("gdpr_export_and_erase_from_the_command_line", |backend| {
        let (dir, data) = temp_data();
        let server = Server::start_with(&data, &backend.args());
        let admin = server.admin_token.clone();
        server.stop();
        sql(
            &database_url(&data, &backend),
            &[
                "INSERT INTO directory_users (id, organization_id, user_name, user_name_key, \
               display_name, email, external_id, active, department, version, created_at, \
               updated_at) VALUES ('usr_c1', 'org_operator', 'Carol.Cli', 'carol.cli', \
               'Carol Cli', 'carol@example.com', 'ext-c1', 1, 'Sales', 1, 5, 5)",
            ],
        );
        let org = ["--org", "org_operator"];

        // The export, by user name ignoring case, on stdout.
        let out = gdpr(
            &data,
            &backend,
            &["export", org[0], org[1], "--user", "CAROL.cli"],
        );
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let export = json(&out);
        assert_eq!(export["format"], "licensing-server gdpr export v1");
        assert_eq!(export["user"]["id"], "usr_c1");
        assert_eq!(export["user"]["email"], "carol@example.com");

        // In a new file, 0600; never over an existing file.
        let file = dir.path().join("carol.json");
        let file_arg = file.to_str().unwrap();
        let args = [
            "export", org[0], org[1], "--user", "usr_c1", "--out", file_arg,
        ];
        let out = gdpr(&data, &backend, &args);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert!(out.stdout.is_empty());
        let written: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        assert_eq!(written["user"]["display_name"], "Carol Cli");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let before = std::fs::read(&file).unwrap();
        let out = gdpr(&data, &backend, &args);
        assert_eq!(out.status.code(), Some(2));
        assert!(stderr(&out).contains("exists"), "{}", stderr(&out));
        assert_eq!(std::fs::read(&file).unwrap(), before);

        // Exit codes: no such user 1; no such organization, an unusable --user 2.
        let out = gdpr(
            &data,
            &backend,
            &["export", org[0], org[1], "--user", "dave"],
        );
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(out.stdout.is_empty());
        let out = gdpr(
            &data,
            &backend,
            &["export", "--org", "org_nope", "--user", "usr_c1"],
        );
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains("org_nope"), "{}", stderr(&out));
        let out = gdpr(&data, &backend, &["export", org[0], org[1], "--user", ""]);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        let out = gdpr(
            &data,
            &backend,
            &["export", org[0], org[1], "--user", "a\u{1b}[2J"],
        );
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

        // The erasure needs --yes: without it nothing changes.
        let out = gdpr(
            &data,
            &backend,
            &["erase", org[0], org[1], "--user", "usr_c1"],
        );
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains("--yes"), "{}", stderr(&out));
        let out = gdpr(
            &data,
            &backend,
            &["export", org[0], org[1], "--user", "usr_c1"],
        );
        assert_eq!(json(&out)["user"]["email"], "carol@example.com");
        let out = gdpr(
            &data,
            &backend,
            &["erase", org[0], org[1], "--user", "nobody", "--yes"],
        );
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));

        let erase = ["erase", org[0], org[1], "--user", "carol.cli", "--yes"];
        let out = gdpr(&data, &backend, &erase);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let erased = json(&out);
        let pseudonym = erased["pseudonym"].as_str().unwrap().to_owned();
        assert!(pseudonym.starts_with("erased_"), "{erased}");
        assert_eq!(erased["already_erased"], false);
        // Erased: the name is gone (found by id only), and again is fine.
        let out = gdpr(&data, &backend, &erase);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let again = ["erase", org[0], org[1], "--user", "usr_c1", "--yes"];
        let out = gdpr(&data, &backend, &again);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_eq!(json(&out)["already_erased"], true);
        let out = gdpr(
            &data,
            &backend,
            &["export", org[0], org[1], "--user", "usr_c1"],
        );
        let export = json(&out);
        assert_eq!(export["user"]["user_name"], pseudonym.as_str());
        assert_eq!(export["user"]["email"], Value::Null);
        assert!(!export.to_string().contains("Carol"), "{export}");

        // Recorded by id, the chain intact.
        let mut verify = vec!["audit", "verify", "--data-dir", data.to_str().unwrap()];
        verify.extend(backend.args());
        let out = cli(&verify);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let mut server = Server::start_with(&data, &backend.args());
        server.admin_token = admin;
        let audit = server.admin("GET", "/v1/audit", None, 200);
        let erasures: Vec<&Value> = audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "cli gdpr erase")
            .collect();
        assert_eq!(erasures.len(), 2, "{audit}");
        assert_eq!(erasures[0]["actor"], "cli");
        assert_eq!(erasures[0]["target"], "/v1/directory/users/usr_c1/erase");
        assert!(
            !audit.to_string().to_lowercase().contains("carol"),
            "{audit}"
        );
        server.stop();
    });
}
