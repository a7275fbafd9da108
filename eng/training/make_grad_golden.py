"""Gradient goldens for block fine-tuning, and a check that our trained checkpoint loads in transformers.

  python eng/training/make_grad_golden.py batch  FIXTURES OUT_DIR     # stdlib only: writes the batches
  python eng/training/make_grad_golden.py golden FIXTURES OUT_DIR     # torch + transformers + safetensors
  python eng/training/make_grad_golden.py logits CHECKPOINT OUT_FILE  # logits of a checkpoint, transformers

The batch of each model is two samples in the prepared format of `blockattn prepare`: a block
sample (three local blocks, a final block, a response) and the full-attention copy of the same
tokens. The golden is the loss (sum of token-shifted cross-entropy over the response tokens of
both samples, divided by their count) and the gradient of every parameter, from
LlamaForCausalLM in float32 with an explicit 4D additive mask and position_ids 0..S-1. For the
tied 128K-vocabulary model the embedding gradient is stored for a subset of rows (every row the
batch uses, every 997th row, the last row) plus its column sums over all rows, to keep the file small.
"""
import json, random, sys, os

MODELS = {"tiny-llama2": 320, "tiny-llama3": 128256}


def make_batch(vocab, seed):
    rng = random.Random(seed)
    local = [5, 4, 6]
    final, response = 5, 6
    n = sum(local) + final + response
    ids = [rng.randrange(vocab) for _ in range(n)]
    labels = [-100] * (n - response) + ids[n - response:]
    return [dict(input_ids=ids, labels=labels, local_block_lengths=local, block_attention=True),
            dict(input_ids=ids, labels=labels, local_block_lengths=local, block_attention=False)]


def allowed(sample):
    """Oracle of the mask, written from DESIGN.md independently of the .NET code."""
    n = len(sample["input_ids"])
    block_of = [None] * n
    if sample["block_attention"]:
        start = 0
        for b, length in enumerate(sample["local_block_lengths"]):
            for t in range(start, start + length):
                block_of[t] = (start, b)
            start += length
    rows = []
    for i in range(n):
        lo = block_of[i][0] if block_of[i] is not None else 0
        rows.append([lo <= j <= i for j in range(n)])
    return rows


def batch_cmd(out):
    os.makedirs(out, exist_ok=True)
    for seed, (name, vocab) in enumerate(MODELS.items()):
        with open(os.path.join(out, f"batch-{name}.jsonl"), "w") as f:
            for s in make_batch(vocab, 1234 + seed):
                f.write(json.dumps(s) + "\n")


def golden_cmd(fixtures, out):
    import torch
    from safetensors.torch import save_file
    from transformers import LlamaForCausalLM
    torch.manual_seed(0)
    for name in MODELS:
        model = LlamaForCausalLM.from_pretrained(os.path.join(fixtures, name), dtype=torch.float32, attn_implementation="eager").to("cuda")
        model.train()
        model.zero_grad()
        samples = [json.loads(l) for l in open(os.path.join(out, f"batch-{name}.jsonl"))]
        count = sum(sum(1 for l in s["labels"][1:] if l != -100) for s in samples)
        total = 0.0
        for s in samples:
            ids = torch.tensor([s["input_ids"]], device="cuda")
            mask = torch.tensor(allowed(s), device="cuda")
            additive = torch.zeros(mask.shape, dtype=torch.float32, device="cuda").masked_fill(~mask, torch.finfo(torch.float32).min)[None, None]
            pos = torch.arange(ids.shape[1], device="cuda")[None]
            logits = model(input_ids=ids, attention_mask=additive, position_ids=pos).logits[0].float()
            labels = torch.tensor(s["labels"], device="cuda")
            loss = torch.nn.functional.cross_entropy(logits[:-1], labels[1:], ignore_index=-100, reduction="sum")
            (loss / count).backward()
            total += loss.item()
            if not s["block_attention"]:
                # Sanity: an ordinary causal forward (no mask given) must give the same loss.
                plain = model(input_ids=ids).logits[0].float()
                ref = torch.nn.functional.cross_entropy(plain[:-1], labels[1:], ignore_index=-100, reduction="sum")
                assert abs(ref.item() - loss.item()) < 1e-4 * abs(loss.item()), (ref.item(), loss.item())
        tensors = {"loss": torch.tensor([total / count], dtype=torch.float32)}
        used = sorted({i for s in samples for i in s["input_ids"]})
        for pname, p in model.named_parameters():
            g = p.grad.detach().float().cpu()
            if pname == "model.embed_tokens.weight" and g.shape[0] > 4096:
                rows = sorted(set(used) | set(range(0, g.shape[0], 997)) | {g.shape[0] - 1})
                tensors["rows." + pname] = torch.tensor(rows, dtype=torch.float32)  # exact below 2^24; our reader takes floats
                tensors["grad." + pname] = g[rows].contiguous()
                tensors["colsum." + pname] = g.double().sum(0).float()
            else:
                tensors["grad." + pname] = g.contiguous()
        save_file(tensors, os.path.join(out, f"grad-golden-{name}.safetensors"))
        print(name, "loss", total / count, "params", len(list(model.parameters())), "tied", model.config.tie_word_embeddings)


def logits_cmd(checkpoint, out):
    import torch
    from safetensors.torch import save_file
    from transformers import LlamaForCausalLM
    model = LlamaForCausalLM.from_pretrained(checkpoint, dtype=torch.float32).to("cuda").eval()
    vocab = model.config.vocab_size
    ids = torch.tensor([[random.Random(99).randrange(vocab) for _ in range(24)]], device="cuda")
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].float().cpu()
    save_file({"input_ids": ids[0].float().cpu(), "logits": logits.contiguous()}, out)
    print(checkpoint, "logits", tuple(logits.shape), "tied", model.config.tie_word_embeddings)


if __name__ == "__main__":
    cmd, a, b = sys.argv[1:4]
    {"batch": lambda: batch_cmd(b), "golden": lambda: golden_cmd(a, b), "logits": lambda: logits_cmd(a, b)}[cmd]()
