use base64::Engine;
use jsonwebtoken::{EncodingKey, Header};

use super::dev::{DEV_ISSUER, DevClaims, DevKey};
use super::*;

const AUD: &str = "http://127.0.0.1:8080/mcp";

fn settings() -> AuthSettings {
    AuthSettings {
        issuer: DEV_ISSUER.into(),
        authorization_servers: vec![],
        jwks: crate::catalog::JwksSource::File("unused".into()),
        jwks_cache_seconds: 300,
        algorithms: vec!["EdDSA".into(), "RS256".into()],
        groups_claim: "groups".into(),
        tenant_claim: "tenant".into(),
        leeway_seconds: 5,
        max_token_lifetime_seconds: None,
        required_typ: None,
        split_string_groups: false,
        approval_sign_in: None,
    }
}

fn setup() -> (tempfile::TempDir, DevKey, Verifier) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (key, created) = DevKey::load_or_create(&dir.path().join("k/dev.pem")).expect("key");
    assert!(created);
    let verifier = Verifier::new(&settings(), AUD.into(), key.key_source()).expect("verifier");
    (dir, key, verifier)
}

fn claims() -> DevClaims {
    DevClaims::new(AUD, "alice", vec!["dev".into()], 600)
}

#[tokio::test]
async fn valid_token_yields_caller() {
    let (_d, key, v) = setup();
    let mut c = claims();
    c.tenant = Some("acme".into());
    c.scope = Some("tools:read tools:echo".into());
    let caller = v.verify(&key.mint(&c).expect("mint")).await.expect("valid");
    assert_eq!(caller.subject, "alice");
    assert_eq!(caller.groups, vec!["dev"]);
    assert_eq!(caller.tenant.as_deref(), Some("acme"));
    assert_eq!(caller.scopes, vec!["tools:read", "tools:echo"]);
}

#[tokio::test]
async fn key_file_is_reused_and_private() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, key, _v) = setup();
    let (again, created) = DevKey::load_or_create(key.path()).expect("reload");
    assert!(!created);
    assert_eq!(again.kid(), key.kid());
    let mode = std::fs::metadata(dir.path().join("k/dev.pem"))
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[tokio::test]
async fn expired_token_is_refused() {
    let (_d, key, v) = setup();
    let mut c = claims();
    c.exp = c.iat - 60;
    assert!(matches!(
        v.verify(&key.mint(&c).expect("mint")).await,
        Err(AuthError::Invalid(_))
    ));
}

#[tokio::test]
async fn not_yet_valid_token_is_refused() {
    let (_d, key, v) = setup();
    let mut c = claims();
    c.nbf = c.iat + 600;
    c.exp = c.iat + 1200;
    assert!(matches!(
        v.verify(&key.mint(&c).expect("mint")).await,
        Err(AuthError::Invalid(_))
    ));
}

#[tokio::test]
async fn wrong_audience_and_issuer_are_refused() {
    let (_d, key, v) = setup();
    let mut c = claims();
    c.aud = "http://evil.example/mcp".into();
    assert!(v.verify(&key.mint(&c).expect("mint")).await.is_err());
    let mut c = claims();
    c.iss = "https://other-issuer".into();
    assert!(v.verify(&key.mint(&c).expect("mint")).await.is_err());
}

#[tokio::test]
async fn alg_none_is_refused() {
    let (_d, key, v) = setup();
    let token = key.mint(&claims()).expect("mint");
    let mut parts = token.split('.');
    let _ = parts.next();
    let payload = parts.next().expect("payload");
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(format!(
        r#"{{"alg":"none","typ":"JWT","kid":"{}"}}"#,
        key.kid()
    ));
    assert!(v.verify(&format!("{header}.{payload}.")).await.is_err());
}

/// RFC 7515 4.1.11: a recipient that does not understand a critical extension must refuse the
/// token. The gateway understands none (issue 11 item 12).
#[tokio::test]
async fn a_token_naming_a_critical_extension_is_refused() {
    let (_d, key, v) = setup();
    for crit in [vec!["exp".to_owned()], vec!["b64".to_owned()], vec![]] {
        let mut header = Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.kid = Some(key.kid());
        header.crit = Some(crit.clone());
        let token = key.sign(&header, &claims()).expect("sign");
        assert!(
            matches!(v.verify(&token).await, Err(AuthError::Critical(_))),
            "crit {crit:?} accepted"
        );
    }
    // The same token without `crit` is fine: the refusal is the header's, not the key's.
    let mut header = Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some(key.kid());
    let token = key.sign(&header, &claims()).expect("sign");
    v.verify(&token).await.expect("valid without crit");
}

/// One request with a 200 KB `kid` must not write 200 KB to the log: the refusal carries the
/// kid's first characters only (issue 11 item 12).
#[tokio::test]
async fn a_huge_kid_is_cut_before_it_is_logged() {
    let (_d, key, v) = setup();
    let huge = "k".repeat(200 * 1024);
    let mut header = Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some(huge.clone());
    let token = key.sign(&header, &claims()).expect("sign");
    let e = v.verify(&token).await.expect_err("unknown kid");
    assert!(matches!(e, AuthError::UnknownKey(_)), "{e}");
    let logged = e.to_string();
    assert!(
        logged.len() < 200,
        "{} bytes: {}",
        logged.len(),
        &logged[..200]
    );
    assert!(
        logged.contains(&"k".repeat(MAX_SHOWN)) && logged.contains('…'),
        "{logged}"
    );
    let mut header = Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some(huge);
    header.crit = Some(vec!["x".repeat(100 * 1024); 100]);
    let e = v
        .verify(&key.sign(&header, &claims()).expect("sign"))
        .await
        .expect_err("crit");
    assert!(e.to_string().len() < 1024, "{} bytes", e.to_string().len());
}

fn verifier_with(key: &DevKey, change: impl FnOnce(&mut AuthSettings)) -> Verifier {
    let mut s = settings();
    change(&mut s);
    Verifier::new(&s, AUD.into(), key.key_source()).expect("verifier")
}

/// `max_token_lifetime_seconds` (issue 11 item 12): a token living longer is refused, one
/// without `iat` too; off, the same token passes.
#[tokio::test]
async fn a_token_living_longer_than_the_maximum_is_refused() {
    let (_d, key, v) = setup();
    let strict = verifier_with(&key, |s| s.max_token_lifetime_seconds = Some(3600));
    let day = DevClaims::new(AUD, "alice", vec!["dev".into()], 86_400);
    let e = strict
        .verify(&key.mint(&day).expect("mint"))
        .await
        .expect_err("a day");
    assert!(matches!(e, AuthError::Lifetime(86_400, 3600)), "{e}");
    v.verify(&key.mint(&day).expect("mint"))
        .await
        .expect("off by default");
    let hour = DevClaims::new(AUD, "alice", vec!["dev".into()], 3600);
    strict
        .verify(&key.mint(&hour).expect("mint"))
        .await
        .expect("an hour");
    let mut no_iat = serde_json::to_value(&hour).expect("json");
    no_iat.as_object_mut().expect("object").remove("iat");
    let mut header = Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some(key.kid());
    let e = strict
        .verify(&key.sign(&header, &no_iat).expect("sign"))
        .await
        .expect_err("no iat");
    assert!(matches!(e, AuthError::Claim("iat")), "{e}");
}

/// `required_typ` (issue 11 item 12; RFC 9068 access tokens say `at+jwt`): another `typ` or
/// none is refused; `application/at+jwt` and any case are the same type.
#[tokio::test]
async fn a_token_without_the_required_typ_is_refused() {
    let (_d, key, v) = setup();
    let strict = verifier_with(&key, |s| s.required_typ = Some("at+jwt".into()));
    let token_with = |typ: Option<&str>| {
        let mut header = Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.kid = Some(key.kid());
        header.typ = typ.map(str::to_owned);
        key.sign(&header, &claims()).expect("sign")
    };
    for typ in [Some("JWT"), None, Some("at+jwt-not")] {
        let e = strict.verify(&token_with(typ)).await.expect_err("typ");
        assert!(matches!(e, AuthError::Typ(..)), "{typ:?}: {e}");
        v.verify(&token_with(typ)).await.expect("off by default");
    }
    for typ in ["at+jwt", "AT+JWT", "application/at+jwt"] {
        strict.verify(&token_with(Some(typ))).await.expect(typ);
    }
}

/// `split_string_groups` (issue 11 item 12): off by default, a groups claim that is one string
/// is one group, so `"dev admin"` grants neither `dev` nor `admin`; on, it is split on spaces.
#[tokio::test]
async fn a_string_groups_claim_is_split_only_when_asked() {
    let (_d, key, v) = setup();
    let split = verifier_with(&key, |s| s.split_string_groups = true);
    let mut c = serde_json::to_value(claims()).expect("json");
    c["groups"] = serde_json::json!("dev admin");
    let mut header = Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some(key.kid());
    let token = key.sign(&header, &c).expect("sign");
    assert_eq!(
        v.verify(&token).await.expect("valid").groups,
        vec!["dev admin"]
    );
    assert_eq!(
        split.verify(&token).await.expect("valid").groups,
        vec!["dev", "admin"]
    );
}

#[tokio::test]
async fn hmac_with_public_key_is_refused() {
    let (_d, key, v) = setup();
    let public = key.jwks()["keys"][0]["x"].as_str().expect("x").to_owned();
    let mut header = Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(key.kid());
    let token = jsonwebtoken::encode(
        &header,
        &claims(),
        &EncodingKey::from_secret(public.as_bytes()),
    )
    .expect("encode");
    assert!(matches!(
        v.verify(&token).await,
        Err(AuthError::Algorithm(_))
    ));
}

#[tokio::test]
async fn unknown_kid_and_other_key_are_refused() {
    let (_d, _key, v) = setup();
    let other_dir = tempfile::tempdir().expect("tempdir");
    let (other, _) = DevKey::load_or_create(&other_dir.path().join("o.pem")).expect("key");
    assert!(matches!(
        v.verify(&other.mint(&claims()).expect("mint")).await,
        Err(AuthError::UnknownKey(_))
    ));
}

#[tokio::test]
async fn garbage_is_refused() {
    let (_d, _key, v) = setup();
    for junk in ["", "abc", "a.b.c", "eyJhbGciOiJFZERTQSJ9.e30.AAAA"] {
        assert!(v.verify(junk).await.is_err(), "{junk:?} accepted");
    }
}

#[tokio::test]
async fn header_parsing() {
    let (_d, key, v) = setup();
    let t = key.mint(&claims()).expect("mint");
    assert!(matches!(
        v.verify_header(None).await,
        Err(AuthError::Missing)
    ));
    let basic = http::HeaderValue::from_static("Basic dXNlcjpwYXNz");
    assert!(matches!(
        v.verify_header(Some(&basic)).await,
        Err(AuthError::NotBearer)
    ));
    let ok = http::HeaderValue::from_str(&format!("Bearer {t}")).expect("header");
    assert!(v.verify_header(Some(&ok)).await.is_ok());
}

#[test]
fn symmetric_algorithms_cannot_be_configured() {
    let mut s = settings();
    s.algorithms = vec!["HS256".into()];
    let err =
        Verifier::new(&s, AUD.into(), KeySource::Static(KeySet::default())).expect_err("hmac");
    assert!(err.to_string().contains("symmetric"));
}

mod remote {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use axum::Router;
    use axum::routing::get;

    use super::*;

    struct Served {
        jwks: Mutex<serde_json::Value>,
        fetches: AtomicUsize,
    }

    async fn serve(served: Arc<Served>) -> String {
        let app = Router::new().route(
            "/jwks.json",
            get(move || {
                let served = served.clone();
                async move {
                    served.fetches.fetch_add(1, Ordering::SeqCst);
                    let doc = served.jwks.lock().expect("lock").clone();
                    axum::Json(doc)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}/jwks.json")
    }

    fn merged(a: &DevKey, b: &DevKey) -> serde_json::Value {
        let mut keys = a.jwks()["keys"].as_array().expect("keys").clone();
        keys.extend(b.jwks()["keys"].as_array().expect("keys").iter().cloned());
        serde_json::json!({ "keys": keys })
    }

    #[tokio::test]
    async fn keys_are_cached_refreshed_once_on_rotation_and_bounded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, _) = DevKey::load_or_create(&dir.path().join("a.pem")).expect("a");
        let (b, _) = DevKey::load_or_create(&dir.path().join("b.pem")).expect("b");
        let (c, _) = DevKey::load_or_create(&dir.path().join("c.pem")).expect("c");
        let served = Arc::new(Served {
            jwks: Mutex::new(a.jwks()),
            fetches: AtomicUsize::new(0),
        });
        let url = serve(served.clone()).await;
        let v = Verifier::new(
            &settings(),
            AUD.into(),
            KeySource::from_url(url).expect("url"),
        )
        .expect("verifier");

        v.verify(&a.mint(&claims()).expect("mint"))
            .await
            .expect("key a");
        v.verify(&a.mint(&claims()).expect("mint"))
            .await
            .expect("key a again");
        assert_eq!(
            served.fetches.load(Ordering::SeqCst),
            1,
            "second use is cached"
        );

        // The issuer rotates in key b: the first token with b's kid triggers one refresh.
        *served.jwks.lock().expect("lock") = merged(&a, &b);
        v.verify(&b.mint(&claims()).expect("mint"))
            .await
            .expect("rotated key b");
        assert_eq!(served.fetches.load(Ordering::SeqCst), 2);

        // Unknown key ids within the cool-down cost no fetch at all.
        for _ in 0..20 {
            let r = v.verify(&c.mint(&claims()).expect("mint")).await;
            assert!(matches!(r, Err(AuthError::UnknownKey(_))));
        }
        assert_eq!(served.fetches.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_removed_key_is_refused_once_the_cache_window_has_passed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, _) = DevKey::load_or_create(&dir.path().join("a.pem")).expect("a");
        let (b, _) = DevKey::load_or_create(&dir.path().join("b.pem")).expect("b");
        let served = Arc::new(Served {
            jwks: Mutex::new(merged(&a, &b)),
            fetches: AtomicUsize::new(0),
        });
        let url = serve(served.clone()).await;
        let mut s = settings();
        s.jwks_cache_seconds = 1;
        let v = Verifier::new(&s, AUD.into(), KeySource::from_url(url).expect("url"))
            .expect("verifier");
        let token_a = a.mint(&claims()).expect("mint");
        v.verify(&token_a).await.expect("key a while served");

        // The issuer drops key a. Within the window the cached set still holds it ...
        *served.jwks.lock().expect("lock") = b.jwks();
        v.verify(&token_a).await.expect("key a within the window");
        assert_eq!(served.fetches.load(Ordering::SeqCst), 1);

        // ... and once the window has passed the set is fetched again and a is gone.
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let r = v.verify(&token_a).await;
        assert!(matches!(r, Err(AuthError::UnknownKey(_))), "{r:?}");
        assert_eq!(served.fetches.load(Ordering::SeqCst), 2);
        v.verify(&b.mint(&claims()).expect("mint"))
            .await
            .expect("key b from the new set");
        assert_eq!(served.fetches.load(Ordering::SeqCst), 2);
    }
}

#[test]
fn concurrent_creation_yields_one_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("race/dev.pem");
    let kids: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| scope.spawn(|| DevKey::load_or_create(&path).expect("key").0.kid()))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    assert!(kids.iter().all(|k| k == &kids[0]), "{kids:?}");
}

/// An ID token of the approval page's sign-in, as the issuer would sign it.
fn id_token(key: &DevKey, change: impl FnOnce(&mut serde_json::Value)) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let mut claims = serde_json::json!({
        "iss": DEV_ISSUER, "aud": "approval-page", "sub": "bob", "nonce": "n-123",
        "iat": now, "exp": now + 300,
    });
    change(&mut claims);
    let mut header = Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some(key.kid());
    key.sign(&header, &claims).expect("sign")
}

#[tokio::test]
async fn an_id_token_for_the_page_with_its_nonce_names_its_subject() {
    let (_d, key, v) = setup();
    let token = id_token(&key, |_| {});
    let sub = v
        .verify_id_token(&token, "approval-page", "n-123")
        .await
        .expect("valid");
    assert_eq!(sub, "bob");
    // Several audiences: valid when the page is the authorized party.
    let token = id_token(&key, |c| {
        c["aud"] = serde_json::json!(["approval-page", "other"]);
        c["azp"] = "approval-page".into();
    });
    v.verify_id_token(&token, "approval-page", "n-123")
        .await
        .expect("azp is the page");
}

#[tokio::test]
async fn an_id_token_with_another_nonce_is_refused() {
    let (_d, key, v) = setup();
    for nonce in [Some("n-124"), None] {
        let token = id_token(&key, |c| match nonce {
            Some(n) => c["nonce"] = n.into(),
            None => {
                c.as_object_mut().expect("object").remove("nonce");
            }
        });
        let e = v
            .verify_id_token(&token, "approval-page", "n-123")
            .await
            .expect_err("nonce");
        assert!(matches!(e, AuthError::Claim("nonce")), "{e}");
    }
}

#[tokio::test]
async fn an_id_token_for_another_client_is_refused() {
    let (_d, key, v) = setup();
    // Another client's ID token, and the gateway's own access token (audience: the gateway).
    for aud in [serde_json::json!("another-client"), serde_json::json!(AUD)] {
        let token = id_token(&key, |c| c["aud"] = aud.clone());
        let e = v
            .verify_id_token(&token, "approval-page", "n-123")
            .await
            .expect_err("audience");
        assert!(matches!(e, AuthError::Invalid(_)), "{e}");
    }
    let token = id_token(&key, |c| {
        c["aud"] = serde_json::json!(["approval-page", "other"]);
        c["azp"] = "other".into();
    });
    let e = v
        .verify_id_token(&token, "approval-page", "n-123")
        .await
        .expect_err("azp");
    assert!(matches!(e, AuthError::Claim("azp")), "{e}");
}

#[tokio::test]
async fn an_expired_or_foreign_id_token_is_refused() {
    let (_d, key, v) = setup();
    let expired = id_token(&key, |c| {
        c["exp"] = (c["iat"].as_u64().expect("iat") - 60).into()
    });
    let foreign = id_token(&key, |c| c["iss"] = "https://another-issuer.example".into());
    for token in [expired, foreign] {
        let e = v
            .verify_id_token(&token, "approval-page", "n-123")
            .await
            .expect_err("refused");
        assert!(matches!(e, AuthError::Invalid(_)), "{e}");
    }
}
