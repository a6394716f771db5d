#!/usr/bin/env python3
"""Golden fixtures for vireo's tokenizer, from independent implementations.

Writes (text lines; "<hex of the UTF-8 input>\\t<ids separated by spaces>"):
  tests/fixtures/tokenizer_smollm2.txt   SmolLM2-135M-Instruct GGUF, HF `tokenizers`: the corpus
                                         below, the corpus joined into one text, then
                                         BYTE_CASES (characters whose bytes have no token; a
                                         third field holds the hex of the reference's decoding,
                                         which lacks those bytes) and RUN_CASES (runs of one
                                         character thousands of bytes long)
  tests/fixtures/tokenizer_chat.txt      one chat rendered with jinja2 from the GGUF's own
                                         tokenizer.chat_template, then encoded (line 1 = the
                                         rendering with generation prompt, its ids)
  tests/fixtures/tokenizer_pretok.txt    pre-tokenizer pieces: "<kind>\t<hex input>\t<hex piece>,<hex piece>..."
                                         for kind gpt2 / llama3 (the `regex` module running the
                                         published patterns) and smollm (HF tokenizers' Digits +
                                         ByteLevel pre-tokenizer, byte-level chars mapped back);
                                         then falcon / deepseek-llm / deepseek-coder: the `regex`
                                         module running llama.cpp's regex lists for them in
                                         sequence (each splits the previous pieces into matches
                                         and gaps, as HF's Split(behavior="isolated") does)
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


# Characters with no byte token in SmolLM2's vocabulary (21 byte values lack one: 04 06 13
# 14 16 1D C0 C1 F1 F2 F5-FF; C0, C1 and F5-FF never occur in UTF-8, F1 and F2 lead the
# 4-byte forms of U+40000-U+BFFFF). The reference BPE has no unknown token and skips them.
BYTE_CASES = [
    "ab\x04cd",
    "\x04",
    "!\x04!",
    "x\x13\x14\x16\x1dy",
    "tab\x06 \x06 end",
    "\U00040000",
    "a\U00080000b \U000B0000",
    "  \x04  ",
    "<|im_start|>\x04<|im_end|>",
]

# Long runs of one character (a single pre-tokenizer piece of thousands of symbols), and two
# long runs side by side.
RUN_CASES = [u * n for u in (" ", "a", "\n", "\t", "!", "\u00e9", "\u4e2d", "1", "ab", " a")
             for n in (700, 3001)] + ["a" * 2500 + " " + "b" * 2500, " " * 4000 + "x", "\n" * 3000 + "y"]


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


def write_cases(f, tok_encode, texts, tok_decode=None):
    """With tok_decode, a third field holds the hex of the decoded ids where it differs from
    the text."""
    for t in texts:
        ids = tok_encode(t)
        line = t.encode("utf-8").hex() + "\t" + " ".join(map(str, ids))
        if tok_decode is not None:
            back = tok_decode(ids)
            if back != t:
                line += "\t" + back.encode("utf-8").hex()
        f.write(line + "\n")


GPT2_RE = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
LLAMA3_RE = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"""
             r""" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""")
PRETOK_EXTRA = [
    "a  b   c\t\td", "x \n y", "end   ", "  \n\n  z", "word\r\n\r\n  next", "!!!\n\nfoo",
    "\tword", "(hello) [world]", "12345678 9", "don'T DON'T it'S", "a \u3000b", "\u00a0\u00a0x",
    "ab12cd 34 ef", "é1é 2 ", "...\r\nabc", " \t\n", "'", "' s", "日本語123テキスト",
]


# llama.cpp's lists (src/llama-vocab.cpp), with "$" written "\\Z" (Python's "$" also matches
# before a final newline; the newlines are split off first, so there is none). DeepSeek-LLM's
# letter set is written as code point ranges (its literal form holds characters that Unicode
# normalisation would silently change when copied, e.g. U+1FD3 -> U+0390).
DEEPSEEK_LATIN = "".join(
    "-".join(chr(int(x, 16)) for x in r.split("-"))
    for r in """0x41-0x5A 0x61-0x7A 0xB5 0xC0-0xD6 0xD8-0xF6 0xF8-0x1BA 0x1BC-0x1BF 0x1C4-0x293 0x295-0x2AF 0x370-0x373 0x376-0x377 0x37B-0x37D 0x37F 0x386 0x388-0x38A 0x38C 0x38E-0x3A1 0x3A3-0x3F5 0x3F7-0x481 0x48A-0x52F 0x531-0x556 0x10A0-0x10C5 0x13A0-0x13F5 0x13F8-0x13FD 0x1C90-0x1CBA 0x1CBD-0x1CBF 0x1D00-0x1D2B 0x1D6B-0x1D77 0x1D79-0x1D9A 0x1E00-0x1F15 0x1F18-0x1F1D 0x1F20-0x1F45 0x1F48-0x1F4D 0x1F50-0x1F57 0x1F59 0x1F5B 0x1F5D 0x1F5F-0x1F7D 0x1F80-0x1FB4 0x1FB6-0x1FBC 0x1FBE 0x1FC2-0x1FC4 0x1FC6-0x1FCC 0x1FD0-0x1FD3 0x1FD6-0x1FDB 0x1FE0-0x1FEC 0x1FF2-0x1FF4 0x1FF6-0x1FFC 0x2102 0x2107 0x210A-0x2113 0x2115 0x2119-0x211D 0x2124 0x2126 0x2128 0x212A-0x212D 0x212F-0x2134 0x2139 0x213C-0x213F 0x2145-0x2149 0x214E 0x2183-0x2184 0x2C00-0x2C7B 0x2C7E-0x2CE4 0x2CEB-0x2CEE 0x2CF2-0x2CF3 0xA640-0xA66D 0xA680-0xA69B 0xA722-0xA76F 0xA771-0xA787 0xA78B-0xA78E 0xAB70-0xABBF 0xFB00-0xFB06 0xFB13-0xFB17 0xFF21-0xFF3A 0xFF41-0xFF5A 0x10400-0x1044F 0x104B0-0x104D3 0x104D8-0x104FB 0x10C80-0x10CB2 0x10CC0-0x10CF2 0x118A0-0x118DF 0x1E900-0x1E943""".replace("0x", "").split())
SEQ_RES = {
    "falcon": [r"[\p{P}\$\+<=>\^~\|`]+",
               r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)",
               r"[0-9][0-9][0-9]"],
    "deepseek-llm": [r"[\r\n]", r"\s?[" + DEEPSEEK_LATIN + r"]+", r"\s?[!-/:-~！-／：-～‘-‟　-。]+", r"\s+\Z",
                     r"[一-龥ࠀ-一가-퟿]+", r"\p{N}+"],
    "deepseek-coder": [r"[\r\n]", r"\s?\p{L}+", r"\s?\p{P}+", r"[一-龥ࠀ-一가-퟿]+", r"\p{N}"],
}


def split_sequence(patterns, text):
    import regex
    pieces = [text]
    for pat in patterns:
        out = []
        for p in pieces:
            pos = 0
            for m in regex.finditer(pat, p):
                if m.start() > pos:
                    out.append(p[pos:m.start()])
                out.append(m.group())
                pos = m.end()
            if pos < len(p):
                out.append(p[pos:])
        pieces = out
    return pieces


SEQ_EXTRA = ["x = a+b<=c>>d^e|f~g`h $5", "price: 1234567 and 12", "end  \t ", "a \u3000 b\u3000", "“quoted” ‘x’ — dash…",
             "Ωmega µ Ǆ ʔ ᴬ", "１２３ ＡＢＣ！？", "deep\r\nseek \n\n  ", "한국어 텍스트 and 中文", "tab\there  "]


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
        for kind, pats in SEQ_RES.items():
            for t in texts + SEQ_EXTRA:
                pieces = split_sequence(pats, t)
                assert "".join(pieces) == t
                f.write(f"{kind}\t{t.encode('utf-8').hex()}\t" + ",".join(p.encode("utf-8").hex() for p in pieces) + "\n")
    print(f"wrote {path}: {len(texts)} texts x 3 pre-tokenizers, {len(texts) + len(SEQ_EXTRA)} x {len(SEQ_RES)}")


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
             "unknown 中文 é 😀", "pieces into ids", "quick brown dog jumps", "", "x",
             # long inputs: the merge loop's bucket queue (>= 256 symbols)
             "hello world " * 60, "the lazy dog jumps over the quick fox " * 20, "x" * 700, " " * 500,
             "pieces" * 100 + " 中文 " * 50]
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
        dec = lambda ids: ref.decode(ids, skip_special_tokens=False)  # noqa: E731
        for t in BYTE_CASES:
            assert dec(enc(t)) != t, f"{t!r}: expected the reference to drop a byte"
        write_cases(f, enc, BYTE_CASES, dec)
        for t in RUN_CASES:
            assert dec(enc(t)) == t, t
        write_cases(f, enc, RUN_CASES, dec)

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
