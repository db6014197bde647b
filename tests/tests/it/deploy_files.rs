//! The deployment files parse and say what the docs promise:
//! `docker-compose.yml`, `deploy/Dockerfile`, the collector config and the
//! kustomize base in `deploy/k8s/base/`. They are read as YAML here, not by
//! `docker compose config`: the compose plugin is not packaged where these
//! tests run, and the older `docker-compose` that is rejects the file's
//! top-level `name`.

use std::path::{Path, PathBuf};

use serde_norway::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn yaml(path: &str) -> Value {
    let text = std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut value: Value =
        serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{path} is not YAML: {e}"));
    value.apply_merge().unwrap();
    value
}

fn str_at<'a>(value: &'a Value, path: &[&str]) -> &'a str {
    let mut at = value;
    for key in path {
        at = at
            .get(*key)
            .unwrap_or_else(|| panic!("no {key:?} in path {path:?}"));
    }
    at.as_str()
        .unwrap_or_else(|| panic!("{path:?} is not a string: {at:?}"))
}

#[test]
fn compose_wires_postgres_migrate_perch_and_tracing() {
    let compose = yaml("docker-compose.yml");
    let services = &compose["services"];
    for name in [
        "postgres",
        "migrate",
        "perch",
        "seed",
        "otel-collector",
        "jaeger",
    ] {
        assert!(services.get(name).is_some(), "service {name}");
    }
    let postgres = &services["postgres"];
    assert!(postgres.get("healthcheck").is_some());
    let volume = postgres["volumes"][0].as_str().unwrap();
    let (named, _) = volume.split_once(':').unwrap();
    assert!(
        compose["volumes"].get(named).is_some(),
        "a named volume: {volume}"
    );

    assert_eq!(services["migrate"]["command"][0], "migrate");
    assert_eq!(
        str_at(services, &["migrate", "build", "dockerfile"]),
        "deploy/Dockerfile"
    );
    let perch = &services["perch"];
    assert_eq!(perch["command"][0], "serve");
    assert_eq!(
        str_at(perch, &["depends_on", "postgres", "condition"]),
        "service_healthy"
    );
    assert_eq!(
        str_at(perch, &["depends_on", "migrate", "condition"]),
        "service_completed_successfully"
    );
    let env = &perch["environment"];
    assert_eq!(env["PERCH_SANDBOX"], "on");
    assert_eq!(env["PERCH_PUBLIC_URL"], "http://localhost:8080");
    assert_eq!(
        env["OTEL_EXPORTER_OTLP_ENDPOINT"],
        "http://otel-collector:4318"
    );
    let keys = env["PERCH_ENCRYPTION_KEYS"].as_str().unwrap();
    assert!(
        keys.starts_with("local-only:"),
        "the fixed key says it is for local use"
    );
    perch_core::Keyring::parse(keys).expect("a valid keyring");
    assert!(
        perch["ports"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|p| p == "8080:8080")
    );

    // The collector's config is the mounted file, and it sends to Jaeger.
    let collector = &services["otel-collector"];
    assert!(
        collector["volumes"][0]
            .as_str()
            .unwrap()
            .starts_with("./deploy/otel-collector.yaml:")
    );
    let config = yaml("deploy/otel-collector.yaml");
    assert!(
        config["receivers"]["otlp"]["protocols"]
            .get("http")
            .is_some()
    );
    assert_eq!(
        str_at(&config, &["exporters", "otlp/jaeger", "endpoint"]),
        "jaeger:4317"
    );
    assert_eq!(
        config["service"]["pipelines"]["traces"]["receivers"][0],
        "otlp"
    );
    assert!(
        services["jaeger"]["ports"][0]
            .as_str()
            .unwrap()
            .starts_with("16686")
    );
    let seed = root().join("deploy/compose/seed.sh");
    assert!(seed.is_file());
}

#[test]
fn dockerfile_is_multi_stage_non_root_and_locked() {
    let text = std::fs::read_to_string(root().join("deploy/Dockerfile")).unwrap();
    let froms = text.lines().filter(|l| l.starts_with("FROM ")).count();
    assert!(froms >= 2, "multi-stage");
    let toolchain = std::fs::read_to_string(root().join("rust-toolchain.toml")).unwrap();
    let pinned = toolchain
        .lines()
        .find_map(|l| l.strip_prefix("channel = "))
        .unwrap()
        .trim_matches('"');
    assert!(
        text.contains(&format!("ARG RUST_VERSION={pinned}")),
        "the builder uses the pinned toolchain {pinned}"
    );
    assert!(text.contains("--locked --release"));
    assert!(text.contains("SQLX_OFFLINE=true"));
    assert!(text.contains("\nUSER 10001"), "non-root");
    let ignore = std::fs::read_to_string(root().join("deploy/Dockerfile.dockerignore")).unwrap();
    assert!(
        ignore.lines().any(|l| l == "target/"),
        "no target/ in the context"
    );
}

fn manifest(name: &str) -> Value {
    yaml(&format!("deploy/k8s/base/{name}"))
}

fn security_context_is_locked_down(container: &Value) {
    let sc = &container["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"][0], "ALL");
    for kind in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            assert!(
                container["resources"][kind].get(resource).is_some(),
                "{kind}.{resource}"
            );
        }
    }
}

#[test]
fn kustomize_base_has_every_kind_and_safe_pods() {
    let kustomization = manifest("kustomization.yaml");
    let resources: Vec<&str> = kustomization["resources"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    let mut kinds = Vec::new();
    for file in &resources {
        let doc = manifest(file);
        kinds.push(doc["kind"].as_str().unwrap().to_owned());
        assert!(doc["metadata"].get("name").is_some(), "{file}");
    }
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "ConfigMap",
            "Deployment",
            "HorizontalPodAutoscaler",
            "Job",
            "PodDisruptionBudget",
            "Secret",
            "Service"
        ]
    );

    let deployment = manifest("deployment.yaml");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let container = &pod["containers"][0];
    assert_eq!(container["args"][0], "serve");
    assert_eq!(
        str_at(container, &["readinessProbe", "httpGet", "path"]),
        "/readyz"
    );
    assert_eq!(
        str_at(container, &["livenessProbe", "httpGet", "path"]),
        "/healthz"
    );
    security_context_is_locked_down(container);
    let selector = &deployment["spec"]["selector"]["matchLabels"];
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];
    for (key, value) in selector.as_mapping().unwrap() {
        assert_eq!(
            &labels[key.as_str().unwrap()],
            value,
            "selector matches the pods"
        );
    }
    let env_from: Vec<&str> = container["envFrom"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|e| {
            e.get("configMapRef")
                .or_else(|| e.get("secretRef"))
                .unwrap()["name"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(env_from, ["perch-config", "perch-secrets"]);

    let job = manifest("migration-job.yaml");
    let job_container = &job["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(job_container["args"][0], "migrate");
    security_context_is_locked_down(job_container);

    let service = manifest("service.yaml");
    assert_eq!(&service["spec"]["selector"], selector);
    assert_eq!(
        &manifest("pdb.yaml")["spec"]["selector"]["matchLabels"],
        selector
    );
    let hpa = manifest("hpa.yaml");
    assert_eq!(
        str_at(&hpa, &["spec", "scaleTargetRef", "name"]),
        str_at(&deployment, &["metadata", "name"])
    );

    // Pool size × replicas stays under Postgres's default max_connections.
    let config = manifest("configmap.yaml");
    let pool: u64 = str_at(&config, &["data", "PERCH_DB_MAX_CONNECTIONS"])
        .parse()
        .unwrap();
    let max_replicas = hpa["spec"]["maxReplicas"].as_u64().unwrap();
    assert!(pool * max_replicas < 100, "{pool} x {max_replicas}");
    // The ConfigMap's settings are ones Perch reads (a typo would be ignored).
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    for key in config["data"].as_mapping().unwrap().keys() {
        let key = key.as_str().unwrap();
        assert!(
            readme.contains(&format!("`{key}`")),
            "{key} is documented in the README"
        );
    }

    // The Secret is a template: placeholders only.
    let secret = manifest("secret.yaml");
    for (key, value) in secret["stringData"].as_mapping().unwrap() {
        assert!(
            value.as_str().unwrap().contains("REPLACE_ME"),
            "{key:?} must be a placeholder"
        );
    }
}
