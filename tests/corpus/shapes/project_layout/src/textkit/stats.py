from collections import Counter


def frequencies(words: list[str], top: int) -> dict[str, int]:
    return dict(sorted(Counter(words).most_common(top)))
