#!/usr/bin/env python3
"""Many streaming clients against the BlockAttention server (POST /v1/chat/completions, stream).

Python standard library only (http.client and threads). For each concurrency level, the same
REQUESTS requests (shared passages, a question of their own, greedy) are sent with at most that
many in flight; per level: output tokens per second over the whole level, TTFT and time per output
token percentiles. Every answer is compared with the same request's answer at the lowest level
(one at a time): batching must not change what a request gets. Writes JSON to --out.

  python3 server_load.py --url http://127.0.0.1:5080 --levels 1,64 --requests 64 --max-tokens 64 --out result.json
"""
import argparse
import http.client
import json
import statistics
import threading
import time
import urllib.parse
import urllib.request

PASSAGES = [
    "- Title: Varnholm\nVarnholm is a small island in the Kessel Sea. Its harbour was rebuilt in 1911 after a storm, "
    "and the lighthouse on its northern cape has been kept by the same family for four generations. " * 4,
    "- Title: Lunde\nLunde is a market town on the mainland opposite Varnholm. Its ferry runs twice a day in summer "
    "and once a day in winter; the crossing takes forty minutes in calm weather. " * 4,
    "- Title: Kessel Sea\nThe Kessel Sea is shallow and cold. Herring and cod are fished there, and its tides are weak; "
    "fog is common from October to March. " * 4,
]


def percentile(values, p):
    if not values:
        return None
    s = sorted(values)
    rank = p / 100 * (len(s) - 1)
    low = int(rank)
    high = min(low + 1, len(s) - 1)
    return s[low] + (s[high] - s[low]) * (rank - low)


def body(i, max_tokens, model):
    content = [{"type": "text", "text": p} for p in PASSAGES]
    content.append({"type": "text", "text": f"Question {i}: what does passage {i % 3 + 1} say about number {i}?"})
    return json.dumps({
        "model": model,
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": max_tokens,
        "temperature": 0,
        "messages": [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": content}],
    })


def one_request(url, i, max_tokens, model, timeout):
    parsed = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=timeout)
    sent = time.perf_counter()
    conn.request("POST", "/v1/chat/completions", body=body(i, max_tokens, model), headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    if response.status != 200:
        text = response.read().decode("utf-8", "replace")
        conn.close()
        return {"index": i, "status": response.status, "error": text[:300]}
    first = None
    chunks = 0
    text = []
    usage = None
    for raw in response:
        line = raw.decode("utf-8").strip()
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            break
        event = json.loads(data)
        if event.get("usage"):
            usage = event["usage"]
        for choice in event.get("choices") or []:
            piece = (choice.get("delta") or {}).get("content")
            if piece:
                if first is None:
                    first = time.perf_counter()
                chunks += 1
                text.append(piece)
    end = time.perf_counter()
    conn.close()
    tokens = usage["completion_tokens"] if usage else chunks
    result = {"index": i, "status": 200, "text": "".join(text), "tokens": tokens,
              "ttft_ms": ((first or end) - sent) * 1000, "total_ms": (end - sent) * 1000}
    if first is not None and tokens > 1:
        result["tpot_ms"] = (end - first) * 1000 / (tokens - 1)
    return result


def run_level(url, level, requests, max_tokens, model, timeout):
    results = [None] * requests
    slots = threading.Semaphore(level)
    threads = []
    start = time.perf_counter()

    def worker(i):
        try:
            results[i] = one_request(url, i, max_tokens, model, timeout)
        except Exception as e:  # noqa: BLE001 - reported, not raised
            results[i] = {"index": i, "status": -1, "error": repr(e)}
        finally:
            slots.release()

    for i in range(requests):
        slots.acquire()
        t = threading.Thread(target=worker, args=(i,), daemon=True)
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    ok = [r for r in results if r and r["status"] == 200]
    tokens = sum(r["tokens"] for r in ok)
    return results, {
        "concurrency": level,
        "requests": requests,
        "failed": requests - len(ok),
        "output_tokens": tokens,
        "wall_s": wall,
        "output_tokens_per_second": tokens / wall if wall > 0 else None,
        "ttft_p50_ms": percentile([r["ttft_ms"] for r in ok], 50),
        "ttft_p95_ms": percentile([r["ttft_ms"] for r in ok], 95),
        "tpot_p50_ms": percentile([r["tpot_ms"] for r in ok if "tpot_ms" in r], 50),
        "tpot_p95_ms": percentile([r["tpot_ms"] for r in ok if "tpot_ms" in r], 95),
    }


def scrape_batches(url):
    time.sleep(1)  # past the exporter's scrape cache
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/metrics", timeout=30) as r:
            text = r.read().decode("utf-8")
    except Exception as e:  # noqa: BLE001
        return {"error": repr(e)}
    sums = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name = line.split("{")[0].split(" ")[0]
        if name in ("blockattention_batch_size_sum", "blockattention_batch_size_count"):
            sums[name] = sums.get(name, 0.0) + float(line.rsplit("}", 1)[-1].split()[0] if "}" in line else line.split()[1])
    count = sums.get("blockattention_batch_size_count", 0)
    return {"batches": count, "mean_batch_size": sums.get("blockattention_batch_size_sum", 0) / count if count else None}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:5080")
    parser.add_argument("--levels", default="1,64", help="comma-separated concurrency levels; the lowest is the reference for exactness")
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--model", default=None, help="model id (default: the server's first in /v1/models)")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--out", default="server-load.json")
    args = parser.parse_args()

    model = args.model
    if model is None:
        with urllib.request.urlopen(args.url.rstrip("/") + "/v1/models", timeout=30) as r:
            model = json.load(r)["data"][0]["id"]
    # Warm-up: the passages into the store, the code paths of one request.
    one_request(args.url, 10_000, 4, model, args.timeout)

    levels = sorted({int(x) for x in args.levels.split(",")})
    report = {"url": args.url, "model": model, "max_tokens": args.max_tokens, "levels": []}
    reference = None
    for level in levels:
        before = scrape_batches(args.url)
        results, summary = run_level(args.url, level, args.requests, args.max_tokens, model, args.timeout)
        after = scrape_batches(args.url)
        if "batches" in before and "batches" in after and after["batches"] and before["batches"] is not None:
            b = after["batches"] - before["batches"]
            s = (after["mean_batch_size"] or 0) * after["batches"] - (before["mean_batch_size"] or 0) * before["batches"]
            summary["mean_batch_size"] = s / b if b else None
        if reference is None:
            reference = results
        else:
            same = sum(1 for r, ref in zip(results, reference)
                       if r and ref and r["status"] == 200 and ref["status"] == 200 and r["text"] == ref["text"])
            summary["answers_equal_to_lowest_level"] = same
            summary["first_difference"] = next((
                {"index": r["index"], "here": r["text"][:200], "lowest_level": ref["text"][:200]}
                for r, ref in zip(results, reference)
                if r and ref and r["status"] == 200 and ref["status"] == 200 and r["text"] != ref["text"]), None)
            summary["ratio_to_lowest_level"] = summary["output_tokens_per_second"] / report["levels"][0]["output_tokens_per_second"]
        errors = [r for r in results if r and r["status"] != 200][:3]
        if errors:
            summary["errors"] = errors
        report["levels"].append(summary)
        print(f"c={level:3}: {summary['output_tokens_per_second']:.1f} tok/s, TTFT p50/p95 {summary['ttft_p50_ms']:.0f}/{summary['ttft_p95_ms']:.0f} ms, "
              f"TPOT p50 {summary['tpot_p50_ms'] or 0:.1f} ms, failed {summary['failed']}, mean batch {summary.get('mean_batch_size')}, "
              f"equal to lowest level {summary.get('answers_equal_to_lowest_level', '-')}/{args.requests}, "
              f"ratio {summary.get('ratio_to_lowest_level', 1.0):.2f}", flush=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
