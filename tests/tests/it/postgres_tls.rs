//! TLS to Postgres: a cluster the test configures with `ssl=on` and a CA of
//! its own (made with the `openssl` command), and `perch migrate` /
//! `perch serve` given `sslmode` and `sslrootcert` in `DATABASE_URL`:
//! `verify-full` connects over TLS; a wrong CA or a wrong host name is
//! refused at startup with a message naming the problem.

use std::process::Command;

use perch_tests::faults::{self, PgCluster, Scratch};
use perch_tests::tls::{ca, server_cert};
use sqlx::Connection as _;

fn migrate(url: &str) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_perch-child"))
        .arg("migrate")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", url)
        .output()
        .unwrap();
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

#[tokio::test]
async fn sslmode_and_sslrootcert_are_honoured() {
    if !perch_tests::tools::openssl() {
        return;
    }
    let scratch = Scratch::new("pg-tls");
    let certs = scratch.0.join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    ca(&certs, "perch-ca");
    ca(&certs, "other-ca");
    server_cert(&certs, "perch-ca", "DNS:localhost");

    let Some(pg) = PgCluster::start(&scratch.0.join("pg"), "") else {
        return;
    };
    // The key and certificate go in the data directory, owned by the
    // server's user (Postgres refuses a key others can read).
    let data = pg.cluster.data_dir().to_owned();
    for file in ["server.crt", "server.key"] {
        std::fs::copy(certs.join(file), data.join(file)).unwrap();
    }
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(
        data.join("server.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let owner = std::fs::metadata(data.join("PG_VERSION")).unwrap();
    use std::os::unix::fs::MetadataExt as _;
    for file in ["server.crt", "server.key"] {
        std::os::unix::fs::chown(data.join(file), Some(owner.uid()), Some(owner.gid())).unwrap();
    }
    faults::append(
        &data.join("postgresql.conf"),
        "\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n",
    );
    pg.stop("fast");
    pg.pg_ctl_start();

    let root = certs.join("perch-ca.crt").display().to_string();
    let other = certs.join("other-ca.crt").display().to_string();
    let url = |host: &str, mode: &str, root: &str| {
        format!(
            "postgres://postgres@{host}:{}/postgres?sslmode={mode}&sslrootcert={root}",
            pg.port
        )
    };

    // verify-full with the right CA and the certificate's name: connects,
    // and the session really is TLS.
    let good = url("localhost", "verify-full", &root);
    let (ok, out) = migrate(&good);
    assert!(ok, "{out}");
    assert!(out.contains("migrations up to date"), "{out}");
    let mut conn = sqlx::PgConnection::connect(&good).await.unwrap();
    let tls: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(tls, "the session is encrypted");
    conn.close().await.unwrap();

    // verify-ca checks the CA (with the sqlx and rustls in the build it
    // checks the name too: see docs/operating.md).
    let (ok, out) = migrate(&url("localhost", "verify-ca", &root));
    assert!(ok, "{out}");
    let (ok, out) = migrate(&url("localhost", "verify-ca", &other));
    assert!(!ok, "{out}");
    assert!(out.contains("not signed by a trusted CA"), "{out}");

    // require encrypts without checking the certificate.
    let (ok, out) = migrate(&url("127.0.0.1", "require", &other));
    assert!(ok, "{out}");

    // A wrong CA: refused, naming the problem, in one line.
    let (ok, out) = migrate(&url("localhost", "verify-full", &other));
    assert!(!ok, "{out}");
    assert_eq!(out.trim().lines().count(), 1, "{out}");
    assert!(
        out.contains("cannot connect to the database")
            && out.contains("not signed by a trusted CA"),
        "{out}"
    );

    // A name the certificate does not hold: refused under verify-full.
    let (ok, out) = migrate(&url("127.0.0.1", "verify-full", &root));
    assert!(!ok, "{out}");
    assert!(out.contains("not valid for the host name"), "{out}");

    // `perch serve` refuses the same way at startup.
    let output = Command::new(env!("CARGO_BIN_EXE_perch-child"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", url("localhost", "verify-full", &other))
        .env("PERCH_ENCRYPTION_KEYS", faults::ENCRYPTION_KEYS)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("not signed by a trusted CA"), "{stderr}");
}
