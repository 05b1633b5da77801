# usage: python3 rounded.py FILE...: every number with a fraction in the
# JSON of each FILE (one document, or one per line) is a measurement as
# the CLI prints it, to 0.1 or to 3 significant digits where that is
# finer: 60.8, 1.23, 0.0123, never 60.798000000000002.
import json, sys

def rounded(text):
    digits = text.lstrip("-").split("e")[0]
    whole, _, frac = digits.partition(".")
    sig = (whole + frac).lstrip("0")
    return len(frac) <= 1 or len(sig) <= 3

bad = []
for name in sys.argv[1:]:
    def number(s):
        if not rounded(s):
            bad.append((name, s))
        return float(s)
    text = open(name).read()
    try:
        json.loads(text)
        docs = [text]
    except ValueError:
        docs = [l for l in text.splitlines() if l.strip()]
    for d in docs:
        json.loads(d, parse_float=number)
if bad:
    sys.exit("numbers not rounded: %s" % bad[:10])
