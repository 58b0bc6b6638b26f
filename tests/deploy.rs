//! The deployment files (`Dockerfile`, `deploy/kubernetes/`) agree with this binary, checked
//! offline by `scripts/check-deploy.sh`: every object validates against Kubernetes' schemas (the
//! `kubernetes-validate` package, installed into `target/deploy-tools` on first use), every flag
//! the manifests pass exists, the probe, container and Service ports are the `--listen` port,
//! the grace period outlasts the drain, and the binary started with the base's configuration
//! serves health and metrics and drains on SIGTERM.

#[test]
fn deployment_manifests_agree_with_the_binary() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = std::process::Command::new("bash")
        .arg(format!("{root}/scripts/check-deploy.sh"))
        .arg(env!("CARGO_BIN_EXE_openai-grpc-gateway"))
        .output()
        .expect("run scripts/check-deploy.sh");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{printed}");
    assert!(printed.contains(" 0 failed"), "{printed}");
}
