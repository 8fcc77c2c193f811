import pytest
import torch

from mindset.chat import ChatSession, SamplingParams, encode_prompt, generate
from mindset.chat.cpu_decode import fast_cpu_decode
from mindset.chat.streaming import IncrementalDecoder
from mindset.errors import MindsetError

GREEDY = SamplingParams(max_new_tokens=24, temperature=0)


def hf_greedy(loaded, prompt_ids, n):
    with torch.no_grad():
        out = loaded.model.generate(
            torch.tensor([prompt_ids]), max_new_tokens=n, do_sample=False, pad_token_id=loaded.tokenizer.pad_token_id
        )
    return out[0, len(prompt_ids) :].tolist()


@pytest.mark.parametrize("fast_cpu", [False, True])
def test_greedy_matches_transformers_generate(tiny, fast_cpu):
    ids = encode_prompt(tiny.tokenizer, "Tell me about Mr. Darcy.")
    ours = generate(tiny, "Tell me about Mr. Darcy.", GREEDY, fast_cpu=fast_cpu)
    assert ours.tokens == hf_greedy(tiny, ids, len(ours.tokens))
    assert ours.prompt_tokens == len(ids)


def test_greedy_is_deterministic(tiny):
    runs = [generate(tiny, "Once upon a time", GREEDY, chat=False) for _ in range(3)]
    assert runs[0].tokens == runs[1].tokens == runs[2].tokens
    assert runs[0].text == runs[1].text


def test_temperature_zero_takes_the_argmax_without_dividing():
    logits = torch.tensor([0.0, 3.0, -1.0])
    from mindset.chat.sampling import choose_token

    assert choose_token(logits, SamplingParams(temperature=0), None) == 1


@pytest.mark.parametrize("temperature", [1e-30, 5e-324])
def test_a_vanishing_temperature_samples_the_argmax(temperature):
    from mindset.chat.sampling import choose_token

    logits = torch.tensor([1.0, 30.0, -2.0, 29.999])
    assert choose_token(logits, SamplingParams(temperature=temperature), torch.Generator().manual_seed(0)) == 1


def test_sampling_is_reproducible_from_the_seed(tiny_llama):
    params = SamplingParams(max_new_tokens=20, temperature=1.0, seed=5)
    a = generate(tiny_llama, "Hello", params)
    b = generate(tiny_llama, "Hello", params)
    c = generate(tiny_llama, "Hello", params.model_copy(update={"seed": 6}))
    assert a.tokens == b.tokens
    assert a.tokens != c.tokens


@pytest.mark.parametrize("update", [{"top_k": 1}, {"top_p": 1e-6}])
def test_extreme_top_k_and_top_p_reduce_to_greedy(tiny_llama, update):
    sampled = generate(tiny_llama, "Hello", SamplingParams(max_new_tokens=16, temperature=1.5, **update))
    greedy = generate(tiny_llama, "Hello", SamplingParams(max_new_tokens=16, temperature=0))
    assert sampled.tokens == greedy.tokens


def test_top_p_keeps_the_smallest_nucleus():
    from mindset.chat.sampling import choose_token

    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    params = SamplingParams(temperature=1.0, top_p=0.8)
    seen = {choose_token(probs.log(), params, torch.Generator().manual_seed(s)) for s in range(300)}
    assert seen == {0, 1}


@pytest.mark.parametrize("bad", [{"temperature": -0.1}, {"top_p": 0}, {"top_p": 1.5}, {"max_new_tokens": 0}, {"top_k": -1}])
def test_invalid_sampling_parameters_are_rejected(bad):
    with pytest.raises(ValueError):
        SamplingParams(**bad)


def test_max_new_tokens_is_respected(tiny_llama):
    out = generate(tiny_llama, "Hello", SamplingParams(max_new_tokens=7))
    assert len(out.tokens) == 7 and out.finish_reason == "length"


def test_stop_token_ends_the_answer(tiny_llama):
    params = SamplingParams(max_new_tokens=24, temperature=1.0, seed=1)
    free = generate(tiny_llama, "Hello", params)
    # make a later token that did not occur before a stop token: generation must end right there
    i = next(i for i in range(2, len(free.tokens)) if free.tokens[i] not in free.tokens[:i])
    tiny_llama.model.generation_config.eos_token_id = free.tokens[i]
    stopped = generate(tiny_llama, "Hello", params)
    assert stopped.tokens == free.tokens[: i + 1]
    assert stopped.finish_reason == "stop"


def test_stop_string_cuts_the_text(tiny_llama):
    params = SamplingParams(max_new_tokens=60, temperature=1.0, seed=2)
    free = generate(tiny_llama, "Hello", params, chat=False)
    # a printable ASCII character decodes the same however the stream is cut (random bytes may not)
    needle = next(c for c in free.text[3:] if c.isascii() and c.isprintable())
    streamed = []
    cut = generate(tiny_llama, "Hello", params, chat=False, stop=[needle], on_text=streamed.append)
    assert cut.finish_reason == "stop"
    assert cut.text == free.text[: free.text.find(needle)]
    assert "".join(streamed) == cut.text


def test_streamed_text_equals_the_final_text(tiny_gpt2):
    pieces = []
    out = generate(tiny_gpt2, "Hello", SamplingParams(max_new_tokens=30, temperature=1.0, seed=3), on_text=pieces.append)
    assert "".join(pieces) == out.text == tiny_gpt2.tokenizer.decode(out.tokens, skip_special_tokens=True)


def test_incremental_decoder_never_splits_a_character(tiny_llama):
    text = "naïve café — 日本語 ok"
    ids = tiny_llama.tokenizer(text, add_special_tokens=False)["input_ids"]
    decoder = IncrementalDecoder(tiny_llama.tokenizer)
    pieces = [decoder.push(i) for i in ids]
    assert all("\ufffd" not in p for p in pieces)
    assert "".join(pieces) + decoder.flush() == text


def test_empty_prompt_is_refused(tiny_llama):
    with pytest.raises(MindsetError, match="prompt is empty"):
        generate(tiny_llama, "   ")


def test_prompt_longer_than_the_context_is_refused(tiny_llama):
    with pytest.raises(MindsetError, match="reads at most 256 tokens"):
        generate(tiny_llama, "x" * 400, chat=False)


def test_generation_stops_at_the_end_of_the_context(tiny_llama):
    out = generate(tiny_llama, "y" * 250, SamplingParams(max_new_tokens=100), chat=False)
    assert out.finish_reason == "context"
    assert out.prompt_tokens + len(out.tokens) == 256


def test_fast_cpu_decode_agrees_with_plain_linear_and_restores_the_model(tiny):
    model = tiny.model
    x = torch.randn(1, 1, model.config.hidden_size)
    linears = [m for m in model.modules() if type(m) is torch.nn.Linear]
    assert linears, "the tiny models have nn.Linear layers"
    plain = [m(x if m.in_features == x.shape[-1] else torch.randn(1, 1, m.in_features)) for m in linears]
    with fast_cpu_decode(model) as switched:
        assert switched == len(linears)
        for m, expected in zip(linears, plain):
            if m.in_features == x.shape[-1]:
                assert torch.allclose(m(x), expected, rtol=1e-5, atol=1e-6)
    assert all("forward" not in m.__dict__ for m in linears)


def test_fast_cpu_decode_gives_the_same_logits_over_a_decode(tiny_llama):
    from transformers import DynamicCache

    ids = torch.tensor([tiny_llama.tokenizer("It is a truth universally acknowledged")["input_ids"]])
    model = tiny_llama.model

    def decode_logits():
        cache = DynamicCache(config=model.config)
        with torch.no_grad():
            model(ids, past_key_values=cache, use_cache=True)
            return torch.stack([model(torch.tensor([[t]]), past_key_values=cache, use_cache=True).logits[0, -1] for t in (65, 66, 67)])

    plain = decode_logits()
    with fast_cpu_decode(model):
        fast = decode_logits()
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-5)


def test_chat_session_keeps_history_and_forgets_to_fit(tiny_llama):
    session = ChatSession(tiny_llama, SamplingParams(max_new_tokens=8))
    session.reply("Hello there")
    session.reply("And again")
    assert [m["role"] for m in session.messages] == ["user", "assistant", "user", "assistant"]
    long = "z" * 150
    session.reply(long)
    assert session.dropped_turns >= 1
    assert session.messages[-2]["content"] == long


def test_chat_template_is_applied(tiny_llama):
    ids = encode_prompt(tiny_llama.tokenizer, "Hi", system="Be brief.")
    text = tiny_llama.tokenizer.decode(ids)
    assert text == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"


def test_generation_takes_the_batched_path_only_where_it_measured_faster(tiny_llama, monkeypatch):
    """pays() times both matrix-vector paths once per shape; generation switches layers only when it says so."""
    import mindset.chat.cpu_decode as cpu_decode
    import mindset.chat.generation as generation

    assert isinstance(cpu_decode.pays(tiny_llama.model), bool)
    before = cpu_decode._faster.cache_info().hits
    cpu_decode.pays(tiny_llama.model)
    assert cpu_decode._faster.cache_info().hits == before + 1  # measured once, then remembered
    switched = []
    real = generation.fast_cpu_decode

    def spy(model, enabled=True):
        switched.append(enabled)
        return real(model, enabled=enabled)

    monkeypatch.setattr(generation, "fast_cpu_decode", spy)
    ids = tiny_llama.tokenizer("hello there")["input_ids"]
    params = SamplingParams(temperature=0.0, max_new_tokens=4)
    for verdict in (False, True):
        monkeypatch.setattr(generation, "pays", lambda model, verdict=verdict: verdict)
        list(generation.stream_steps(tiny_llama.model, ids, params, [], 4))
    assert switched == [False, True]
