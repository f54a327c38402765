"""The released checkpoints' chat templates on tiny random models: labels hold the answer and one end token.

The templates are the real ones (tests/fixtures/chat_templates/, sources in its README); what they render is read
off them here, not off medmat: LLaVA-1.5 writes no `</s>` after the assistant turn, Qwen2-VL closes it with
`<|im_end|>\\n`, Llama-3.2-Vision with `<|eot_id|>`. Also Mllama (Llama-3.2-Vision) collation, training and both
scoring modes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from medmat.train.collate import IGNORE, collator_for, messages  # noqa: E402
from medmat.train.config import TrainConfig  # noqa: E402
from medmat.train.evaluate import evaluate  # noqa: E402
from medmat.train.tiny import build_random_model, synthetic_rows  # noqa: E402
from medmat.train.trainer import train  # noqa: E402

torch.set_num_threads(1)
TEMPLATES = Path(__file__).parent / "fixtures" / "chat_templates"
# family -> (template file, the token the checkpoint's generation stops at)
REAL = {"llava": ("llava-1.5-7b-hf.jinja", "</s>"), "qwen2_vl": ("Qwen2-VL-7B-Instruct.jinja", "<|im_end|>"),
        "mllama": ("Llama-3.2-11B-Vision-Instruct.jinja", "<|eot_id|>")}


@pytest.fixture(scope="module", params=sorted(REAL))
def real(request):
    family = request.param
    template = (TEMPLATES / REAL[family][0]).read_text()
    model, processor = build_random_model(family, chat_template=template)
    return family, model, processor


def test_the_fixture_templates_render_the_turns_as_the_checkpoints_do(real):
    family, _, processor = real
    row = synthetic_rows(1)[0]
    user, answer = messages(row, "choice")
    turn = [{"role": "assistant", "content": [{"type": "text", "text": answer}]}]
    full = processor.apply_chat_template(user + turn, tokenize=False)
    prompt = processor.apply_chat_template(user, add_generation_prompt=True, tokenize=False)
    suffix = full[len(prompt):]
    if family == "llava":
        assert prompt.endswith(" ASSISTANT:") and suffix == f" {answer} "  # no </s>: the template omits it
    elif family == "qwen2_vl":
        assert prompt.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n")
        assert suffix == f"{answer}<|im_end|>\n"
    else:
        assert "Cutting Knowledge" not in prompt  # with an image the template writes no system turn
        assert prompt.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n") and suffix == f"{answer}<|eot_id|>"


def test_labels_are_the_answer_and_one_end_token_with_real_templates(real):
    family, model, processor = real
    rows = synthetic_rows(3)
    batch = collator_for(model, processor, "choice", train=True)([rows[i] for i in range(3)])
    tokenizer = processor.tokenizer
    end = REAL[family][1]
    end_id = tokenizer.convert_tokens_to_ids(end)
    assert end_id in (model.generation_config.eos_token_id if isinstance(model.generation_config.eos_token_id, list)
                      else [model.generation_config.eos_token_id])
    for i in range(3):
        labels = batch["labels"][i]
        kept = labels[labels != IGNORE]
        assert tokenizer.decode(kept).strip() == rows[i]["answer_choice"] + end
        assert int(kept[-1]) == end_id and int((kept == end_id).sum()) == 1  # ends with exactly one end token
        real_tokens = int(batch["attention_mask"][i].sum())
        assert (labels[: real_tokens - len(kept)] == IGNORE).all() and (labels[real_tokens:] == IGNORE).all()
    if family == "mllama":
        mask = batch["cross_attention_mask"]
        assert mask.shape[:2] == batch["input_ids"].shape  # padded along the sequence, not concatenated
        for i in range(3):
            real_tokens = int(batch["attention_mask"][i].sum())
            assert mask[i, real_tokens - 1].sum() > 0 and mask[i, real_tokens:].sum() == 0  # answer sees the image
    out = model(**batch)
    assert torch.isfinite(out.loss)


def test_mllama_trains_and_both_scoring_modes_agree(tmp_path):
    rows = synthetic_rows(8)
    model, processor = build_random_model("mllama", seed=1,
                                          chat_template=(TEMPLATES / REAL["mllama"][0]).read_text())
    cfg = TrainConfig(model="tiny", output_dir=tmp_path / "run", max_steps=40, learning_rate=3e-3, batch_size=8,
                      per_device_batch_size=8, precision="fp32", gradient_checkpointing=False, num_workers=0,
                      save=False, warmup_ratio=0.0, lr_scheduler="constant", logging_steps=10)
    model, processor, summary = train(cfg, rows, model=model, processor=processor)
    assert summary["losses"][-1] < summary["losses"][0] / 10
    generated = evaluate(model, processor, rows, batch_size=4)
    by_logits = evaluate(model, processor, rows, batch_size=4, scoring="logits")
    assert generated["overall"] == by_logits["overall"] == {"correct": 8, "total": 8, "accuracy": 100.0}
    assert [s["extracted"] for s in generated["samples"]] == [s["extracted"] for s in by_logits["samples"]]


def test_letter_logits_do_not_depend_on_left_padding(real):
    """A batch of prompts of different lengths (left-padded) picks the same letters as one prompt at a time."""
    family, model, processor = real
    rows = synthetic_rows(4)
    longer = "Please look closely at this scan and think about the options below. "
    rows = rows.map(lambda r, i: {"question_choice": longer * i + r["question_choice"]}, with_indices=True)
    from medmat.train.evaluate import predict

    batched = predict(model, processor, rows, batch_size=4, scoring="logits")
    single = predict(model, processor, rows, batch_size=1, scoring="logits")
    assert batched == single and set(batched) <= set("ABCD")
