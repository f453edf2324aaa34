"""Praat TextGrid alignments (words, phones) as plain lists of ``(start, end, label)``.

Parsing is done by `praatio <https://pypi.org/project/praatio/>`_ (maintained, reads Praat's long
``ooTextFile`` and short text formats and praatio's JSON), never by hand. Times are in seconds.

    from audioattn_sb.textgrid import read_textgrid, boundaries
    tiers = read_textgrid("arctic_a0001.TextGrid")
    tiers["words"][1]        # (0.03, 0.52, 'author')
    boundaries(tiers["words"])

Interval tiers give ``(start, end, label)``; point tiers give ``(time, time, label)``. Empty
intervals (Praat's unlabelled gaps, ``""``) are dropped unless ``include_empty=True``; silence
labels such as ``sil`` or ``sp`` are ordinary labels and always kept.
"""

import os

#: tier names tried, in order, by :func:`find_tier` for words and phones
WORD_TIER_NAMES = ("words", "word", "WORDS", "Word", "Words", "wrd")
PHONE_TIER_NAMES = ("phones", "phone", "PHONES", "Phone", "Phones", "phn", "segments")


class TextGridError(ValueError):
    """A TextGrid cannot be read or lacks the requested tier (the message says what to do)."""


def read_textgrid(path, include_empty=False):
    """Read a TextGrid: ``{tier name: [(start, end, label), ...]}`` in file order.

    Arguments
    ---------
    path : str or path-like
        A Praat TextGrid (long or short text format).
    include_empty : bool
        Keep intervals whose label is empty (Praat's unlabelled gaps).

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "a.TextGrid")
        >>> lines = ['File type = "ooTextFile"', 'Object class = "TextGrid"', '', '0', '1.5',
        ...          '<exists>', '1', '"IntervalTier"', '"words"', '0', '1.5', '2',
        ...          '0', '0.5', '""', '0.5', '1.5', '"hello"']   # Praat's short text format
        >>> _ = open(p, "w").write("\\n".join(lines) + "\\n")
        >>> read_textgrid(p)
        {'words': [(0.5, 1.5, 'hello')]}
        >>> read_textgrid(p, include_empty=True)["words"][0]
        (0.0, 0.5, '')
    """
    from praatio import textgrid as ptg

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise TextGridError(f"{path}: no such TextGrid file")
    try:
        tg = ptg.openTextgrid(path, includeEmptyIntervals=bool(include_empty),
                              reportingMode="silence")
    except Exception as err:  # praatio raises several unrelated types on malformed files
        raise TextGridError(f"{path}: not a readable Praat TextGrid ({type(err).__name__}: "
                            f"{err}); re-export it from Praat as a text file") from err
    tiers = {}
    for name in tg.tierNames:
        tier = tg.getTier(name)
        out = []
        for entry in tier.entries:
            if len(entry) == 3:  # Interval(start, end, label)
                start, end, label = entry
            else:  # Point(time, label)
                start = end = entry[0]
                label = entry[1]
            out.append((float(start), float(end), str(label)))
        tiers[name] = out
    return tiers


def find_tier(tiers, names):
    """The first tier of ``tiers`` whose name is in ``names`` (case-insensitive), else None.

    Example:
        >>> find_tier({"Words": [(0.0, 1.0, "a")]}, WORD_TIER_NAMES)
        [(0.0, 1.0, 'a')]
    """
    lower = {k.lower(): k for k in tiers}
    for name in names:
        if name in tiers:
            return tiers[name]
        if name.lower() in lower:
            return tiers[lower[name.lower()]]
    return None


def words_and_phones(tiers, word_tier=None, phone_tier=None):
    """``(words, phones)`` interval lists from :func:`read_textgrid`'s output (None if absent).

    ``word_tier`` / ``phone_tier`` name the tiers explicitly (a missing explicit name is an
    error); otherwise the usual names are tried (:data:`WORD_TIER_NAMES`,
    :data:`PHONE_TIER_NAMES`).

    Example:
        >>> words_and_phones({"words": [(0.0, 1.0, "a")], "phones": []})
        ([(0.0, 1.0, 'a')], [])
    """
    out = []
    for explicit, names, what in ((word_tier, WORD_TIER_NAMES, "word"),
                                  (phone_tier, PHONE_TIER_NAMES, "phone")):
        if explicit is not None:
            if explicit not in tiers:
                raise TextGridError(f"no {what} tier named {explicit!r}; tiers: "
                                    f"{', '.join(tiers) or '(none)'}")
            out.append(tiers[explicit])
        else:
            out.append(find_tier(tiers, names))
    return tuple(out)


def boundaries(intervals, t_min=None, t_max=None):
    """Sorted unique interval edges (seconds), optionally restricted to [t_min, t_max].

    Example:
        >>> boundaries([(0.0, 0.5, "a"), (0.5, 1.2, "b"), (1.5, 2.0, "c")])
        [0.0, 0.5, 1.2, 1.5, 2.0]
        >>> boundaries([(0.0, 0.5, "a"), (0.5, 1.2, "b")], t_min=0.1)
        [0.5, 1.2]
    """
    edges = sorted({float(t) for s, e, _ in intervals for t in (s, e)})
    return [t for t in edges if (t_min is None or t >= t_min) and (t_max is None or t <= t_max)]


__all__ = ["PHONE_TIER_NAMES", "TextGridError", "WORD_TIER_NAMES", "boundaries", "find_tier",
           "read_textgrid", "words_and_phones"]
