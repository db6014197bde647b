//! Secrets at rest: no plaintext API key, client secret or consumer secret
//! anywhere in the database; key rotation re-encrypts everything while old
//! and new rows stay readable.

use perch_core::Keyring;
use perch_tests::tenants::{call, create_app, create_tenant, dump_rows, hex, twitter_app};
use perch_tests::{TestServer, TestServerOptions};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn the_database_holds_no_secret_in_plaintext() {
    let server = TestServer::start().await;
    let mut secrets: Vec<String> = Vec::new();
    let tenant = create_tenant(&server, "Acme").await;
    secrets.push(tenant.key.clone());
    let second = call(
        &server,
        Method::POST,
        "/v1/api-keys",
        Some(&tenant.key),
        Some(&json!({"label": "two"})),
    )
    .await;
    secrets.push(second.body["secret"].as_str().unwrap().to_owned());
    let consumer_secret = "ConsumerSecretPlaintext0123456789abcdefXYZ";
    secrets.push(consumer_secret.to_owned());
    let app = create_app(
        &server,
        &tenant.key,
        &twitter_app("App", "ck-visible", consumer_secret),
    )
    .await;
    secrets.push(app["client_secret"].as_str().unwrap().to_owned());
    let app_id = app["id"].as_str().unwrap();
    let rotated = call(
        &server,
        Method::POST,
        &format!("/v1/apps/{app_id}/rotate-secret"),
        Some(&tenant.key),
        None,
    )
    .await;
    secrets.push(rotated.body["client_secret"].as_str().unwrap().to_owned());
    let patched_secret = "PatchedConsumerSecretPlaintext987654321";
    secrets.push(patched_secret.to_owned());
    let patched = call(
        &server,
        Method::PATCH,
        &format!("/v1/apps/{app_id}"),
        Some(&tenant.key),
        Some(&json!({"provider": {"kind": "twitter", "consumer_key": "ck2", "consumer_secret": patched_secret}})),
    )
    .await;
    assert_eq!(patched.status, 200);
    create_app(&server, &tenant.key, &json!({"name": "Sandboxed", "callback_urls": ["https://a.example/"], "provider": {"kind": "sandbox"}})).await;

    let rows = dump_rows(&server.db.pool).await;
    assert!(rows.iter().any(|(table, _)| table == "apps"));
    assert!(
        rows.iter()
            .any(|(_, row)| row.contains("ck-visible") || row.contains("ck2")),
        "the scan sees app rows"
    );
    for secret in &secrets {
        let encoded = hex(secret.as_bytes());
        // The random part alone, too (in case a prefix were stripped).
        let tail = &secret[secret.len() - 20..];
        for (table, row) in &rows {
            assert!(
                !row.contains(secret.as_str()),
                "{table} holds a secret in plaintext"
            );
            assert!(!row.contains(&encoded), "{table} holds a secret as bytea");
            assert!(!row.contains(tail), "{table} holds part of a secret");
        }
    }

    // pg_dump, when it is installed and matches the server, must agree.
    let dump = std::process::Command::new("pg_dump")
        .arg("--data-only")
        .arg(&server.db.url)
        .output();
    if let Ok(output) = dump
        && output.status.success()
    {
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(text.contains("ck2"), "the dump holds the app");
        for secret in &secrets {
            assert!(!text.contains(secret.as_str()));
            assert!(!text.contains(&hex(secret.as_bytes())));
        }
    }
}

#[tokio::test]
async fn key_rotation_reencrypts_everything_while_old_rows_still_read() {
    let old_entry = Keyring::generate_entry("old");
    let new_entry = Keyring::generate_entry("new");
    // The server holds both keys, the old one first: it seals under the old
    // key, and opens rows sealed under either.
    let server = TestServer::start_with(TestServerOptions {
        encryption_keys: format!("{old_entry},{new_entry}"),
        ..TestServerOptions::default()
    })
    .await;
    let tenant = create_tenant(&server, "Acme").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let app = create_app(
            &server,
            &tenant.key,
            &twitter_app(&format!("app {i}"), "ck", &format!("consumer-secret-{i}")),
        )
        .await;
        ids.push(
            app["id"]
                .as_str()
                .unwrap()
                .parse::<perch_tenants::AppId>()
                .unwrap(),
        );
    }
    let pool = &server.db.pool;
    // The rotation's keyring: the new key first.
    let both = Keyring::parse(&format!("{new_entry},{old_entry}")).unwrap();
    let servers_ring = Keyring::parse(&format!("{old_entry},{new_entry}")).unwrap();
    let read_all = |ring: &'static str| {
        let ring = match ring {
            "server" => &servers_ring,
            "rotation" => &both,
            _ => unreachable!(),
        };
        let ids = ids.clone();
        async move {
            let mut out = Vec::new();
            for (i, id) in ids.iter().enumerate() {
                let app = perch_tenants::load_for_login(pool, *id)
                    .await
                    .unwrap()
                    .unwrap();
                let secret = app.consumer_secret(ring).unwrap();
                assert_eq!(secret.expose(), format!("consumer-secret-{i}"));
                out.push(app.consumer_secret.key_id.clone());
            }
            out
        }
    };
    assert_eq!(read_all("server").await, vec!["old"; 5]);

    // One batch of two: the database now mixes keys, and every row reads.
    let column = perch_tenants::SEALED_COLUMNS[0];
    let done = perch_core::rotation::rotate_batch(pool, &both, &column, 2)
        .await
        .unwrap();
    assert_eq!(done, 2);
    let mixed = read_all("server").await;
    assert_eq!(read_all("rotation").await, mixed);
    assert_eq!(mixed.iter().filter(|k| *k == "new").count(), 2);
    assert_eq!(mixed.iter().filter(|k| *k == "old").count(), 3);
    // The running server keeps answering throughout.
    let listed = call(&server, Method::GET, "/v1/apps", Some(&tenant.key), None).await;
    assert_eq!(listed.body["data"].as_array().unwrap().len(), 5);

    // `perch keys rotate` finishes the job in batches.
    let keys = format!("{new_entry},{old_entry}");
    let env = [
        ("DATABASE_URL", server.db.url.as_str()),
        ("PERCH_ENCRYPTION_KEYS", keys.as_str()),
    ];
    let report = perch::cli::keys_rotate(&env, 2).await.unwrap();
    assert!(
        report.contains("apps.consumer_secret_sealed: 3 re-encrypted"),
        "{report}"
    );
    let again = perch::cli::keys_rotate(&env, 2).await.unwrap();
    assert!(
        again.contains("apps.consumer_secret_sealed: 0 re-encrypted"),
        "{again}"
    );

    // Everything is under the new key, and the new key alone opens it.
    let new_only = Keyring::parse(&new_entry).unwrap();
    assert_eq!(read_all("server").await, vec!["new"; 5]);
    for (i, id) in ids.iter().enumerate() {
        let app = perch_tenants::load_for_login(pool, *id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            app.consumer_secret(&new_only).unwrap().expose(),
            format!("consumer-secret-{i}")
        );
    }
    let old_only = Keyring::parse(&old_entry).unwrap();
    let app = perch_tenants::load_for_login(pool, ids[0])
        .await
        .unwrap()
        .unwrap();
    assert!(app.consumer_secret(&old_only).is_err());
}
