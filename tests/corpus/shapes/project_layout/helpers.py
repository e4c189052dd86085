import re


def normalise(text: str, lowercase: bool) -> list[str]:
    words = re.findall(r"[A-Za-z']+", text)
    return [w.lower() for w in words] if lowercase else words
