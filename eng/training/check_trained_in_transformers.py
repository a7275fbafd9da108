"""Checks that checkpoints trained by BlockAttention.Training load in transformers with our logits.

  python eng/training/check_trained_in_transformers.py FOLDER [--device cpu|cuda] [--tol 1e-3] [--json OUT.json]

FOLDER is what eng/training/ExportTrainedCheckpoints wrote: manifest.json and, per case, a
checkpoint folder (config.json, model.safetensors) with ours.safetensors beside the weights:
`prompt{i}.inference` (our inference loader, causal attention) and `prompt{i}.trainable` (our
trainable model reloaded from the checkpoint; causal, or the block mask where the prompt has local
blocks), float32 logits at the prompt's `kept_positions`.

Each checkpoint is loaded with AutoModelForCausalLM in float32 (eager attention) and run on the
same token ids: plainly for causal prompts, and with an explicit 4D mask (each local block sees
only itself, the final block sees everything before it) and positions 0..S-1 for block prompts.
A case passes when every max |ours - transformers| is within the float32 tolerance of the
project's fixtures (1e-3). Prints one PASS/FAIL line per comparison and writes a JSON summary.
Exit status 0 when all pass, 1 otherwise.
"""
import argparse, json, os, sys

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM


def allowed(n, local):
    """Boolean [n, n] mask, written from the design independently of the .NET code."""
    block_start = [None] * n
    start = 0
    for length in local:
        for t in range(start, start + length):
            block_start[t] = start
        start += length
    return torch.tensor([[(block_start[i] if block_start[i] is not None else 0) <= j <= i for j in range(n)] for i in range(n)])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--tol", type=float, default=1e-3)
    ap.add_argument("--json", default=None, help="summary file (default FOLDER/transformers-check.json)")
    a = ap.parse_args()
    if a.device.startswith("cuda"):
        # Plain float32 matmuls on the GPU (no TF32), so the comparison is float32 against float32.
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    manifest = json.load(open(os.path.join(a.folder, "manifest.json")))
    results, ok = [], True
    import transformers
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, device {a.device}")
    for case in manifest["cases"]:
        path = os.path.join(a.folder, case["dir"])
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="eager").to(a.device).eval()
        ours = load_file(os.path.join(path, "ours.safetensors"))
        tied_ok = (model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()) == case["tied"]
        line = f"{'PASS' if tied_ok else 'FAIL'} {case['name']}: tie_word_embeddings={case['tied']} as loaded"
        print(line)
        results.append(dict(case=case["name"], check="tied", passed=tied_ok))
        ok &= tied_ok
        for p, prompt in enumerate(case["prompts"]):
            ids = torch.tensor([prompt["input_ids"]], device=a.device)
            n, local = ids.shape[1], prompt["local_block_lengths"]
            kept = torch.tensor(prompt["kept_positions"], device=a.device)
            with torch.no_grad():
                if local:
                    mask = allowed(n, local).to(a.device)
                    additive = torch.zeros(mask.shape, dtype=torch.float32, device=a.device).masked_fill(~mask, torch.finfo(torch.float32).min)[None, None]
                    pos = torch.arange(n, device=a.device)[None]
                    logits = model(input_ids=ids, attention_mask=additive, position_ids=pos).logits[0].float()
                else:
                    logits = model(input_ids=ids).logits[0].float()
            theirs = logits.index_select(0, kept).cpu()
            for source in ("inference", "trainable"):
                key = f"prompt{p}.{source}"
                if key not in ours:
                    continue
                diff = (ours[key].float() - theirs).abs().max().item()
                passed = diff <= a.tol and ours[key].shape == theirs.shape
                ok &= passed
                mode = "block mask" if local else "causal"
                print(f"{'PASS' if passed else 'FAIL'} {case['name']} prompt {p} ({mode}, {n} tokens) ours[{source}] vs transformers: max|diff| {diff:.3e} (tol {a.tol:g})")
                results.append(dict(case=case["name"], prompt=p, source=source, mode=mode, tokens=n, max_abs_diff=diff, tol=a.tol, passed=passed))
        del model
    summary = dict(torch=torch.__version__, transformers=transformers.__version__, device=a.device, passed=ok, results=results)
    out = a.json or os.path.join(a.folder, "transformers-check.json")
    with open(out, "w") as f:
        json.dump(summary, f, indent=2)
    print(("ALL PASS" if ok else "SOME FAILED") + f"; summary in {out}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
