// POST /encode {"text": "..."} -> {"tokens": [...], "count": N}, cl100k_base, the way
// tiktoken's Rust core does it: fancy-regex pieces, a hash map from bytes to rank, and the
// lowest-rank pair merge. Usage: rust_bpe PORT RANKS_FILE THREADS
use hyper::service::{make_service_fn, service_fn};
use hyper::{Body, Request, Response, Server};
use rustc_hash::FxHashMap;
use std::sync::Arc;

const PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

struct Bpe {
    ranks: FxHashMap<Vec<u8>, u32>,
    re: fancy_regex::Regex,
}

impl Bpe {
    fn merge(&self, piece: &[u8]) -> Vec<u32> {
        let mut parts: Vec<(usize, u32)> = (0..=piece.len()).map(|i| (i, u32::MAX)).collect();
        let rank = |parts: &Vec<(usize, u32)>, i: usize| -> u32 {
            if i + 2 < parts.len() {
                *self.ranks.get(&piece[parts[i].0..parts[i + 2].0]).unwrap_or(&u32::MAX)
            } else {
                u32::MAX
            }
        };
        for i in 0..parts.len().saturating_sub(2) {
            parts[i].1 = rank(&parts, i);
        }
        loop {
            let mut best = (u32::MAX, 0usize);
            for (i, &(_, r)) in parts[..parts.len() - 1].iter().enumerate() {
                if r < best.0 {
                    best = (r, i);
                }
            }
            if best.0 == u32::MAX {
                break;
            }
            let i = best.1;
            parts.remove(i + 1);
            parts[i].1 = rank(&parts, i);
            if i > 0 {
                parts[i - 1].1 = rank(&parts, i - 1);
            }
        }
        parts.windows(2).map(|w| self.ranks[&piece[w[0].0..w[1].0]]).collect()
    }

    fn encode(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::new();
        for m in self.re.find_iter(text) {
            let piece = m.unwrap().as_str().as_bytes();
            match self.ranks.get(piece) {
                Some(&r) => out.push(r),
                None => out.extend(self.merge(piece)),
            }
        }
        out
    }
}

async fn handle(bpe: Arc<Bpe>, req: Request<Body>) -> Result<Response<Body>, hyper::Error> {
    let body = hyper::body::to_bytes(req.into_body()).await?;
    let v: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => return Ok(Response::builder().status(400).body(Body::from("bad json")).unwrap()),
    };
    let text = v["text"].as_str().unwrap_or("");
    let tokens = bpe.encode(text);
    let out = serde_json::json!({"count": tokens.len(), "tokens": tokens});
    Ok(Response::builder()
        .header("content-type", "application/json")
        .body(Body::from(out.to_string()))
        .unwrap())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = args[1].parse().unwrap();
    let threads: usize = args[3].parse().unwrap();
    let mut ranks = FxHashMap::default();
    for line in std::fs::read_to_string(&args[2]).unwrap().lines() {
        let mut it = line.split(' ');
        let tok = base64::decode(it.next().unwrap()).unwrap();
        ranks.insert(tok, it.next().unwrap().parse().unwrap());
    }
    let bpe = Arc::new(Bpe { ranks, re: fancy_regex::Regex::new(PATTERN).unwrap() });
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build().unwrap();
    rt.block_on(async move {
        let make = make_service_fn(move |_| {
            let bpe = bpe.clone();
            async move { Ok::<_, hyper::Error>(service_fn(move |req| handle(bpe.clone(), req))) }
        });
        let addr = ([127, 0, 0, 1], port).into();
        eprintln!("listening on {}", addr);
        Server::bind(&addr).serve(make).await.unwrap();
    });
}
