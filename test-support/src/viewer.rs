//! A viewer seen from outside: its findings URL taken apart, and GETs against its API.

/// `http://127.0.0.1:P/proxy-U/projects/N` → (`http://127.0.0.1:P/proxy-U`, N).
pub fn split_url(url: &str) -> (String, i64) {
    let (base, id) = url.rsplit_once("/projects/").unwrap_or_else(|| panic!("not a findings URL: {url}"));
    (base.to_owned(), id.parse().unwrap_or_else(|_| panic!("no project id in {url}")))
}

/// GET `{base}/{path}` with one header; status and body.
pub fn get(base: &str, path: &str, header: (&str, &str)) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let resp = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(format!("{base}/{path}"))
            .header(header.0, header.1)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {base}/{path}: {e}"));
        (resp.status().as_u16(), resp.text().await.unwrap())
    })
}

/// GET `{base}/api/{path}` with the viewer's key; the JSON body.
pub fn api_get(base: &str, apikey: &str, path: &str) -> serde_json::Value {
    let (status, body) = get(base, &format!("api/{path}"), ("API-Key", apikey));
    assert_eq!(status, 200, "GET api/{path}: {body}");
    serde_json::from_str(&body).unwrap()
}
