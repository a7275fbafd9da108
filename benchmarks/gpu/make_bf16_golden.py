# Golden outputs of transformers in bfloat16 on a GPU, in the format of tests/fixtures/*/golden.json,
# for a random model whose attention takes our tensor-core kernel path (head_dim 128, GQA 4).
#
# `blockattn verify --dtype bfloat16 --device cuda` against these goldens compares our bf16 block
# mode with transformers' bf16 block mode on the same card, not only with a float32 reference.
# The script also writes the float32 goldens of the same model, and prints how far transformers'
# own bf16 results lie from its float32 ones: the scale against which our distance is judged.
#
#   OUT=/some/dir python3 benchmarks/gpu/make_bf16_golden.py
#   -> $OUT/model (config.json, model.safetensors), $OUT/golden-bf16, $OUT/golden-fp32,
#      $OUT/transformers-bf16-vs-fp32.json
#
# Block attention follows the reference's inference formulation: every local block run alone from
# position 0, its keys re-rotated to the block's offset, caches concatenated, the final block on top.
import json, os
import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM, DynamicCache
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb
from safetensors.torch import save_file

OUT = os.environ.get("OUT", "/tmp/bf16-golden")
DEV = "cuda"
torch.set_grad_enabled(False)


def kv_of(cache, i):
    if hasattr(cache, "layers"):
        return cache.layers[i].keys, cache.layers[i].values
    return cache.key_cache[i], cache.value_cache[i]


def greedy(model, cache, logits, next_pos, steps):
    ids, margins = [], []
    for s in range(steps):
        top2 = torch.topk(logits, 2)
        margins.append(float(top2.values[0] - top2.values[1]))
        ids.append(int(top2.indices[0]))
        if s == steps - 1:
            break
        out = model(input_ids=torch.tensor([[ids[-1]]], device=DEV), position_ids=torch.tensor([[next_pos]], device=DEV),
                    past_key_values=cache, use_cache=True)
        cache, logits, next_pos = out.past_key_values, out.logits[0, -1].float(), next_pos + 1
    return ids, margins


def run_case(model, layers, name, blocks, tensors, steps=8, keep=4):
    lengths = [len(b) for b in blocks]
    ids = [t for b in blocks for t in b]
    total, final = len(ids), lengths[-1]
    prefix = total - final
    res = {"name": name, "blocks": blocks, "lengths": lengths, "logits_kept_positions": list(range(total - keep, total))}

    out = model(input_ids=torch.tensor([ids], device=DEV), position_ids=torch.arange(total, device=DEV)[None], use_cache=True)
    full = out.logits[0].float()
    tensors[f"{name}.full.logits"] = full[total - keep:].cpu().contiguous()
    res["full_greedy"], res["full_margins"] = greedy(model, out.past_key_values, full[-1], total, steps)

    ks, vs = [[] for _ in range(layers)], [[] for _ in range(layers)]
    offset = 0
    for bi, b in enumerate(blocks[:-1]):
        n = len(b)
        o = model(input_ids=torch.tensor([b], device=DEV), position_ids=torch.arange(n, device=DEV)[None], use_cache=True)
        for li in range(layers):
            k, v = kv_of(o.past_key_values, li)
            cos, sin = model.model.rotary_emb(v, torch.full((1, n), offset, device=DEV))
            k2, _ = apply_rotary_pos_emb(k, k, cos, sin)
            if bi == 1 and li == 0:
                tensors[f"{name}.block1.layer0.k_at_zero"] = k[0].float().cpu().contiguous()
                tensors[f"{name}.block1.layer0.v"] = v[0].float().cpu().contiguous()
                tensors[f"{name}.block1.layer0.k_at_offset"] = k2[0].float().cpu().contiguous()
                res["block1_offset"] = offset
            ks[li].append(k2)
            vs[li].append(v)
        offset += n
    cache = DynamicCache()
    for li in range(layers):
        cache.update(torch.cat(ks[li], dim=2), torch.cat(vs[li], dim=2), li)
    o = model(input_ids=torch.tensor([blocks[-1]], device=DEV), position_ids=torch.arange(prefix, total, device=DEV)[None],
              past_key_values=cache, use_cache=True)
    block = o.logits[0].float()
    tensors[f"{name}.block.logits"] = block[final - keep:].cpu().contiguous()
    res["block_greedy"], res["block_margins"] = greedy(model, o.past_key_values, block[-1], total, steps)
    res["block_formulations_max_abs_diff"] = 0.0
    res["full_vs_block_final_logits_max_abs_diff"] = float((full[prefix:] - block).abs().max())
    return res


def goldens(model, layers, cases, folder):
    tensors, doc = {}, {"model": "bf16-check", "cases": []}
    for name, blocks in cases:
        doc["cases"].append(run_case(model, layers, name, blocks, tensors))
    os.makedirs(folder, exist_ok=True)
    save_file(tensors, os.path.join(folder, "golden.safetensors"))
    json.dump(doc, open(os.path.join(folder, "golden.json"), "w"))
    return tensors


def main():
    print("torch", torch.__version__, "transformers", transformers.__version__, torch.cuda.get_device_name(), flush=True)
    cfg = LlamaConfig(vocab_size=512, hidden_size=512, intermediate_size=1024, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=1, head_dim=128, max_position_embeddings=131072,
                      rope_theta=500000.0, rope_scaling={"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                                         "original_max_position_embeddings": 8192, "rope_type": "llama3"},
                      rms_norm_eps=1e-5, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2, torch_dtype="bfloat16")
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(2026)
    cfg.initializer_range = 0.06
    model = LlamaForCausalLM(cfg).eval()
    for n, p in model.named_parameters():
        if n.endswith("norm.weight"):
            p.copy_(1.0 + 0.1 * torch.randn_like(p))
    # transformers keeps RoPE's inverse frequencies in float32 in a bf16 model it loads
    # (from_pretrained); Module.to(bfloat16) would round them to bf16 as well, which shifts every
    # angle by up to 0.4 % (0.6 of a key's scale at position 40). Keep them as the loader does.
    inverse_frequencies = model.model.rotary_emb.inv_freq.clone()
    model = model.to(torch.bfloat16)
    folder = os.path.join(OUT, "model")
    os.makedirs(folder, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
    cfg.to_json_file(os.path.join(folder, "config.json"))

    g = torch.Generator().manual_seed(11)
    def passage(n):
        return torch.randint(3, cfg.vocab_size, (n,), generator=g).tolist()
    cases = [
        ("rag", [passage(n) for n in (37, 300, 511, 129, 900, 50)]),
        ("many", [passage(n) for n in [64] * 60 + [50]]),
        ("long", [passage(n) for n in (40, 300, 6000, 2500, 3)] + [passage(50)]),
    ]
    model = model.to(DEV)
    model.model.rotary_emb.inv_freq = inverse_frequencies.to(DEV)
    bf16 = goldens(model, cfg.num_hidden_layers, cases, os.path.join(OUT, "golden-bf16"))
    model = model.float()
    fp32 = goldens(model, cfg.num_hidden_layers, cases, os.path.join(OUT, "golden-fp32"))
    report = {}
    for key in bf16:
        if key.endswith("logits"):
            d = (bf16[key] - fp32[key]).abs().max().item()
            report[key] = {"max_abs_diff": d, "max_abs_fp32": fp32[key].abs().max().item()}
            print(f"transformers bf16 vs fp32  {key:14s} max|diff| {d:.3e}  (max|logit| {report[key]['max_abs_fp32']:.2f})", flush=True)
    json.dump(report, open(os.path.join(OUT, "transformers-bf16-vs-fp32.json"), "w"), indent=1)


if __name__ == "__main__":
    main()
