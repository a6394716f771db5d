#!/usr/bin/env python3
"""Golden fixtures for vireo's tokenizer, from independent implementations.

Writes (text lines; "<hex of the UTF-8 input>\\t<ids separated by spaces>"):
  tests/fixtures/tokenizer_smollm2.txt   SmolLM2-135M-Instruct GGUF, HF `tokenizers`, corpus below
  tests/fixtures/tokenizer_chat.txt      one chat rendered with jinja2 from the GGUF's own
                                         tokenizer.chat_template, then encoded (line 1 = the
                                         rendering with generation prompt, its ids)
  tests/fixtures/tokenizer_pretok.txt    pre-tokenizer pieces: "<kind>\t<hex input>\t<hex piece>,<hex piece>..."
                                         for kind gpt2 / llama3 (the `regex` module running the
                                         published patterns) and smollm (HF tokenizers' Digits +
                                         ByteLevel pre-tokenizer, byte-level chars mapped back)
  tests/fixtures/tokenizer_spm.txt       a tiny SentencePiece BPE model trained here with the
                                         `sentencepiece` package: lines "piece\\t<hex piece>\\t<score>\\t<type>"
                                         after a "#vocab" header, then "#cases" and hex/ids lines.

How the SmolLM2 reference is built. transformers' GGUF loader
(AutoTokenizer.from_pretrained(dir, gguf_file=...)) is checked first (see
check_transformers_gguf below): its GGUF->tokenizers conversion for "gpt2" vocabularies
uses a plain ByteLevel pre-tokenizer and ignores tokenizer.ggml.pre = "smollm", so it does
NOT split digits the way SmolLM2's original tokenizer.json does (with transformers 5.x it
still agreed on 38 of the 39 corpus texts, because SmolLM2's merges never join digits; the
exception is a text of non-ASCII numbers, "Ⅻ ½ ² ٣ ५ fullwidth１２３"). The reference is therefore
built with `tokenizers` directly from the GGUF's vocabulary and merges, with the pre-tokenizer
of SmolLM2's tokenizer.json:
  Sequence([Digits(individual_digits=True), ByteLevel(add_prefix_space=False, use_regex=True)])
a ByteLevel decoder, and the control tokens (token_type 3) added as special tokens.
The script prints whether the transformers path agreed on the corpus.

The model file is read with the `gguf` package. Setup:
  pip install tokenizers gguf jinja2 sentencepiece regex numpy transformers
Usage:
  python3 scripts/golden/make_tokenizer_fixtures.py [models/SmolLM2-135M-Instruct.Q4_1.gguf]
"""
import os
import sys
import tempfile

import gguf
import jinja2
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "tests", "fixtures")

CORPUS = [
    "",
    " ",
    "  ",
    "Hello world",
    "Hello, world! How are you doing today?",
    " leading space",
    "trailing space ",
    "  two leading and two trailing  ",
    "The quick brown fox jumps over the lazy dog. THE END.",
    "It's what they're saying: we've, I'm, you'll, he'd. IT'S LOUD, YOU'LL SEE, 'twas.",
    "Numbers: 1234567 and 3.14159, 42, 2024-06-01, 1,000,000 and 0x1F.",
    "a1b22c333d4444",
    " 1 12 123 1234",
    "Punctuation!!! ??? ... --- ;;; ::: (parens) [brackets] {braces} <angle> @#$%^&*",
    "tabs\tand\t\ttabs",
    "new\nlines\n\nand\n\n\nmore",
    "mixed \t \n  whitespace\r\n\r\nend",
    "spaces      inside",
    "ends with newline\n",
    "\n\n\n",
    "   \t  ",
    "café naïve Ångström résumé façade coöperate",
    "中文 日本語 한국어 Русский текст Ελληνικά العربية עברית हिन्दी",
    "中文字符测试，标点符号。",
    "emoji 😀 👍🏽 👨‍👩‍👧‍👦 🇫🇷🇯🇵 ❤️ ✨",
    "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    "#include <vector>\nint main() {\n  std::vector<int> v{1, 2, 3};\n  for (auto& x : v) x *= 2;\n  return 0;\n}\n",
    "<|im_start|>user\nhi<|im_end|>",
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "text<|endoftext|>more text <|im_end|> end",
    "<|im_start|<|im_end|>>",
    "URL: https://example.com/path?query=1&x=2#frag",
    "e-mail: someone@example.org, price $19.99 (≈ €18.50)",
    "snake_case camelCase PascalCase SCREAMING_CASE kebab-case",
    "   indented\n\tcode\n",
    "Ⅻ ½ ² ٣ ५ fullwidth１２３",
    "\u00a0non-breaking\u00a0space\u3000ideographic space",
    "a'b'c 'S 'Ll 'RE",
    "x" * 200,
]


def gguf_vocab(path):
    r = gguf.GGUFReader(path)

    def strings(key):
        f = r.fields[key]
        return [bytes(f.parts[i]).decode("utf-8") for i in f.data]

    tokens = strings("tokenizer.ggml.tokens")
    merges = strings("tokenizer.ggml.merges")
    f = r.fields["tokenizer.ggml.token_type"]
    types = [int(f.parts[i][0]) for i in f.data]
    f = r.fields["tokenizer.chat_template"]
    template = bytes(f.parts[f.data[0]]).decode("utf-8")
    return tokens, merges, types, template


def build_reference(tokens, merges, types):
    vocab = {t: i for i, t in enumerate(tokens)}
    pairs = [tuple(m.split(" ", 1)) for m in merges]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=pairs, fuse_unk=False, ignore_merges=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True),
         pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(
        [AddedToken(t, special=True, normalized=False) for t, k in zip(tokens, types) if k == 3])
    return tok


def check_transformers_gguf(path, ref):
    """Returns (agreed, total) of transformers' GGUF tokenizer vs the reference on CORPUS."""
    try:
        from transformers import AutoTokenizer
        hf = AutoTokenizer.from_pretrained(os.path.dirname(os.path.abspath(path)),
                                           gguf_file=os.path.basename(path))
    except Exception as e:  # noqa: BLE001 - report and carry on with the direct reference
        print(f"transformers GGUF loading failed: {e!r}")
        return None
    print("transformers GGUF pre_tokenizer:", hf.backend_tokenizer.pre_tokenizer.__getstate__())
    agree = sum(hf.encode(t, add_special_tokens=False) == ref.encode(t, add_special_tokens=False).ids
                for t in CORPUS)
    return agree, len(CORPUS)


def write_cases(f, tok_encode, texts):
    for t in texts:
        ids = tok_encode(t)
        f.write(t.encode("utf-8").hex() + "\t" + " ".join(map(str, ids)) + "\n")


GPT2_RE = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
LLAMA3_RE = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"""
             r""" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""")
PRETOK_EXTRA = [
    "a  b   c\t\td", "x \n y", "end   ", "  \n\n  z", "word\r\n\r\n  next", "!!!\n\nfoo",
    "\tword", "(hello) [world]", "12345678 9", "don'T DON'T it'S", "a \u3000b", "\u00a0\u00a0x",
    "ab12cd 34 ef", "é1é 2 ", "...\r\nabc", " \t\n", "'", "' s", "日本語123テキスト",
]


def byte_decoder():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def make_pretok():
    import regex
    dec = byte_decoder()
    smol = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                    pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    texts = [t for t in CORPUS if "<|" not in t] + PRETOK_EXTRA
    path = os.path.join(FIX, "tokenizer_pretok.txt")
    with open(path, "w") as f:
        for t in texts:
            h = t.encode("utf-8").hex()
            for kind, pat in (("gpt2", GPT2_RE), ("llama3", LLAMA3_RE)):
                pieces = regex.findall(pat, t)
                assert "".join(pieces) == t
                f.write(f"{kind}\t{h}\t" + ",".join(p.encode("utf-8").hex() for p in pieces) + "\n")
            pieces = [bytes(dec[c] for c in p) for p, _ in smol.pre_tokenize_str(t)]
            assert b"".join(pieces) == t.encode("utf-8")
            f.write(f"smollm\t{h}\t" + ",".join(p.hex() for p in pieces) + "\n")
    print(f"wrote {path}: {len(texts)} texts x 3 pre-tokenizers")


def make_spm():
    import sentencepiece as spm
    train = [
        "the quick brown fox jumps over the lazy dog",
        "hello world hello there general kenobi",
        "tokenizers split text into pieces and pieces into ids",
        "sentencepiece treats the input as a raw stream and uses a space marker",
        "byte fallback spells unknown characters with byte tokens",
    ] * 20
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "train.txt")
        with open(src, "w") as fh:
            fh.write("\n".join(train))
        prefix = os.path.join(d, "m")
        spm.SentencePieceTrainer.train(
            input=src, model_prefix=prefix, model_type="bpe", vocab_size=400, byte_fallback=True,
            normalization_rule_name="identity", add_dummy_prefix=True, remove_extra_whitespaces=False,
            split_digits=False, character_coverage=1.0, bos_id=1, eos_id=2, unk_id=0,
            hard_vocab_limit=False, minloglevel=2)
        sp = spm.SentencePieceProcessor(model_file=prefix + ".model")
    cases = ["hello world", "the lazy fox", " leading", "trailing ", "double  space",
             "unknown 中文 é 😀", "pieces into ids", "quick brown dog jumps", "", "x"]
    path = os.path.join(FIX, "tokenizer_spm.txt")
    with open(path, "w") as f:
        f.write("#vocab\n")
        for i in range(sp.get_piece_size()):
            piece = sp.id_to_piece(i)
            # token types as GGUF numbers them: 1 normal, 2 unknown, 3 control, 6 byte
            k = 2 if sp.is_unknown(i) else 3 if sp.is_control(i) else 6 if sp.is_byte(i) else 1
            f.write(f"{piece.encode().hex()}\t{sp.get_score(i)!r}\t{k}\n")
        f.write("#cases\n")
        write_cases(f, lambda t: sp.encode(t), cases)
    print(f"wrote {path}: {sp.get_piece_size()} pieces, {len(cases)} cases")


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
    tokens, merges, types, template = gguf_vocab(path)
    ref = build_reference(tokens, merges, types)

    res = check_transformers_gguf(path, ref)
    if res is not None:
        print(f"transformers GGUF tokenizer agrees with the digit-splitting reference on {res[0]}/{res[1]} texts")

    enc = lambda t: ref.encode(t, add_special_tokens=False).ids  # noqa: E731
    for t in CORPUS:  # the reference itself must round-trip
        assert ref.decode(enc(t), skip_special_tokens=False) == t, t
    with open(os.path.join(FIX, "tokenizer_smollm2.txt"), "w") as f:
        write_cases(f, enc, CORPUS)
    # a long mixed text: the corpus joined, so pieces meet across case boundaries
    with open(os.path.join(FIX, "tokenizer_smollm2.txt"), "a") as f:
        write_cases(f, enc, ["\n".join(CORPUS)])

    env = jinja2.Environment()
    messages = [{"role": "user", "content": "What is the capital of France?"},
                {"role": "assistant", "content": "Paris."},
                {"role": "user", "content": "And of Japan? Answer in 3 words."}]
    rendered = env.from_string(template).render(messages=messages, add_generation_prompt=True)
    rendered_sys = env.from_string(template).render(
        messages=[{"role": "system", "content": "Be brief."}] + messages[:1], add_generation_prompt=False)
    with open(os.path.join(FIX, "tokenizer_chat.txt"), "w") as f:
        write_cases(f, enc, [rendered, rendered_sys])
    print("wrote tokenizer_smollm2.txt and tokenizer_chat.txt")
    make_pretok()
    make_spm()


if __name__ == "__main__":
    main()
