"""Quality filters drop with named reasons; the toxicity scorer is pluggable."""

from llmft.config import FilterSpec
from llmft.data.quality import QualityFilter, lexicon_toxicity, load_scorer


def _qf(**kw):
    return QualityFilter.from_spec(FilterSpec(**kw), ("prompt", "response"))


def test_reasons():
    qf = _qf(min_tokens=4, max_tokens=60)
    ok = {"prompt": "How do I reset my password please?", "response": "Open settings and choose reset password."}
    assert qf.reason(ok) is None
    assert qf.reason({**ok, "response": "  "}) == "empty"
    assert qf.reason({**ok, "response": None}) == "empty"
    assert qf.reason({"prompt": "hi", "response": "yo"}) == "too_short"
    assert qf.reason({**ok, "response": "word " * 100}) == "too_long"
    assert qf.reason({**ok, "response": "\n".join(["Call me back."] * 6)}) == "repetitive_lines"
    assert qf.reason({**ok, "response": " ".join(["refund now please"] * 8)}) == "repetitive_ngrams"
    assert qf.reason({**ok, "response": "You are a stupid moron, read the manual."}) == "toxic"


def test_lexicon_scores_and_custom_scorer(tmp_path, monkeypatch):
    (tmp_path / "my_scorer.py").write_text("def score(text):\n    return 1.0 if 'polite' in text else 0.0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert lexicon_toxicity("thank you for your help") == 0.0
    assert lexicon_toxicity("you idiot") == 0.5
    assert lexicon_toxicity("stupid idiot") > 0.5
    # A scorer the operator registered in its settings is named by the spec, by name.
    monkeypatch.setenv("LLMFT_PLUGINS", "toxicity_scorers.polite=my_scorer:score")
    qf = QualityFilter.from_spec(FilterSpec(toxicity_scorer="polite"), ("prompt", "response"))
    assert qf.reason({"prompt": "a perfectly polite question here", "response": "a polite answer here"}) == "toxic"
    assert load_scorer("lexicon") is lexicon_toxicity
    # `module:callable` only for the operator's own specs, and only when its settings allow it.
    monkeypatch.setenv("LLMFT_ALLOW_CALLABLE_SPECS", "1")
    qf = QualityFilter.from_spec(FilterSpec(toxicity_scorer="my_scorer:score"),
                                 ("prompt", "response"))
    assert qf.reason({"prompt": "a perfectly polite question here", "response": "a polite answer here"}) == "toxic"


def test_token_counting_uses_the_tokenizer_when_given():
    calls = []

    class Tok:
        def __call__(self, text, add_special_tokens=False):
            calls.append(text)
            return {"input_ids": list(range(1000))}

    qf = QualityFilter.from_spec(FilterSpec(max_tokens=500), ("prompt", "response"), tokenizer=Tok())
    assert qf.reason({"prompt": "short question here", "response": "short answer here"}) == "too_long"
    assert calls
