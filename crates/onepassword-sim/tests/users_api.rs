//! The simulator's Users API driven by plain reqwest, as 1Password's Users
//! API docs describe it: client credentials by Basic auth, paging in both
//! spellings, Status errors, refused write actions, revocation.

use std::net::SocketAddr;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sluice_onepassword_sim::{SimConfig, Simulator};

async fn sim(users: usize) -> Simulator {
    let listen: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    Simulator::start(SimConfig { users, ..SimConfig::default() }, listen).await.expect("sim")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().user_agent("sluice-tests/1").build().expect("client")
}

async fn token(sim: &Simulator, secret: &str, body: &str) -> (StatusCode, Value) {
    let (id, _) = sim.users_client();
    let answer = client()
        .post(format!("{}/v1beta1/users/oauth2/token", sim.url()))
        .basic_auth(id, Some(secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.to_owned())
        .send()
        .await
        .expect("token request");
    let status = answer.status();
    (status, answer.json().await.unwrap_or(Value::Null))
}

async fn access_token(sim: &Simulator) -> String {
    let (status, body) =
        token(sim, &sim.users_client().1, "grant_type=client_credentials&scope=openid").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["token_type"].as_str(), body["expires_in"].as_u64()),
        (Some("Bearer"), Some(900))
    );
    body["access_token"].as_str().expect("token").to_owned()
}

async fn get(sim: &Simulator, token: &str, path_and_query: &str) -> (StatusCode, Value) {
    let answer = client()
        .get(format!("{}{path_and_query}", sim.url()))
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    let status = answer.status();
    (status, answer.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_token_endpoint_takes_only_the_applications_client_credentials() {
    let sim = sim(0).await;
    let (status, body) = token(&sim, "wrong", "grant_type=client_credentials").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    let (status, _) = token(&sim, &sim.users_client().1, "grant_type=password").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) =
        token(&sim, &sim.users_client().1, "grant_type=client_credentials&scope=admin").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    access_token(&sim).await;
}

#[tokio::test]
async fn the_list_pages_in_both_spellings_and_ends_without_a_token() {
    let sim = sim(60).await;
    let token = access_token(&sim).await;
    let base = format!("/v1beta1/accounts/{}/users", sim.account_id());
    let (status, first) = get(&sim, &token, &base).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first["results"].as_array().expect("results").len(), 25, "25 by default");
    let mut seen = 0;
    let mut next: Option<String> = None;
    for camel in [false, true, false, true] {
        let query = match (&next, camel) {
            (None, _) => "?max_page_size=20".to_owned(),
            (Some(t), false) => format!("?max_page_size=20&page_token={t}"),
            (Some(t), true) => format!("?maxPageSize=20&pageToken={t}"),
        };
        let (status, page) = get(&sim, &token, &format!("{base}{query}")).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let results = page["results"].as_array().expect("results");
        seen += results.len();
        let user = results[0].as_object().expect("user");
        assert_eq!(user.len(), 6, "exactly the six fields: {user:?}");
        next = page["next_page_token"].as_str().map(str::to_owned);
        if next.is_none() {
            break;
        }
    }
    assert_eq!((seen, next), (72, None), "12 people of the events and 60 more, then no token");
    let (status, error) = get(&sim, &token, &format!("{base}?filter=user.isAdmin()")).await;
    assert_eq!((status, error["code"].as_u64()), (StatusCode::BAD_REQUEST, Some(3)));
    let (status, error) =
        get(&sim, &token, "/v1beta1/accounts/AAAAAAAAAAAAAAAAAAAAAAAAAA/users").await;
    assert_eq!((status, error["code"].as_u64()), (StatusCode::NOT_FOUND, Some(5)));
}

#[tokio::test]
async fn write_actions_are_refused_and_counted_and_revoked_tokens_stop() {
    let sim = sim(0).await;
    let token = access_token(&sim).await;
    let users = format!("{}/v1beta1/accounts/{}/users", sim.url(), sim.account_id());
    let (_, list) =
        get(&sim, &token, &format!("/v1beta1/accounts/{}/users", sim.account_id())).await;
    let id = list["results"][0]["id"].as_str().expect("id").to_owned();
    let (status, user) =
        get(&sim, &token, &format!("/v1beta1/accounts/{}/users/{id}", sim.account_id())).await;
    assert_eq!((status, user["id"].as_str()), (StatusCode::OK, Some(id.as_str())));
    for action in ["suspend", "reactivate"] {
        let answer = client()
            .post(format!("{users}/{id}:{action}"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("post");
        assert_eq!(answer.status(), StatusCode::FORBIDDEN);
    }
    let directory: Value = client()
        .get(format!("{}/_sim/users", sim.url()))
        .send()
        .await
        .expect("sim")
        .json()
        .await
        .expect("json");
    assert_eq!(directory["writes"], json!(2));
    let revoked = client()
        .post(format!("{}/v1beta1/users/oauth2/revoke", sim.url()))
        .basic_auth(sim.users_client().0, Some(sim.users_client().1))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={token}"))
        .send()
        .await
        .expect("revoke");
    assert_eq!(revoked.status(), StatusCode::OK);
    let (status, error) =
        get(&sim, &token, &format!("/v1beta1/accounts/{}/users", sim.account_id())).await;
    assert_eq!((status, error["code"].as_u64()), (StatusCode::UNAUTHORIZED, Some(16)));
}
