"""Prompt-lookup drafts (``lookup_draft``): where the proposed tokens come from."""

from __future__ import annotations

from slm_lsp.backends.draft import PROMPT_DRAFT, lookup_draft


def test_the_previous_suggestion_is_searched_first_and_gives_the_most_tokens():
    previous = [7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17]
    history = [1, 2, 7, 8, 9, 50, 7, 8, 9, 51, 52, 53, 54, 55, 7, 8, 9]
    # The prompt has 7 8 9 too (followed by 51...), but the previous suggestion wins.
    assert lookup_draft(history, previous, 8) == [10, 11, 12, 13, 14, 15, 16, 17]


def test_a_two_token_key_is_enough_in_the_previous_suggestion():
    assert lookup_draft([1, 2, 3, 40, 41], [5, 40, 41, 42, 43], 8) == [42, 43]


def test_the_prompt_needs_a_three_token_key_and_gives_few_tokens():
    prompt = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
    history = prompt + [20, 2, 3]
    assert lookup_draft(history, [], 8) == [], "a 2-token match in the prompt says too little"
    history = prompt + [20, 1, 2, 3]
    assert lookup_draft(history, [], 8) == [4, 5, 6, 7][:PROMPT_DRAFT]
    assert lookup_draft(history, [], 8, prompt_limit=8, prompt_keys=(3, 2)) == \
        [4, 5, 6, 7, 8, 9, 10, 11]


def test_the_latest_occurrence_counts_and_the_current_position_is_not_a_match():
    history = [1, 2, 3, 10, 1, 2, 3, 20, 1, 2, 3]
    assert lookup_draft(history, [], 8)[0] == 20
    assert lookup_draft([1, 2, 3], [], 8) == []


def test_no_drafts_when_the_limits_are_zero():
    history = [1, 2, 3, 10, 1, 2, 3]
    assert lookup_draft(history, [1, 2, 3, 4], 0, prompt_limit=0) == []
