import math
import statistics

import pytest

from mindset.errors import MindsetError
from mindset.evaluate.metrics import apply_filters, exact_match, mc2, mean_and_stderr, multiple_choice_scores, regex_filter
from mindset.evaluate.suites.arithmetic import TASK as GSM

STRICT, FLEXIBLE = (pipeline["filter"] for pipeline in GSM["filter_list"])
GSM_OPTIONS = {k: v for k, v in GSM["metric_list"][0].items() if k in ("regexes_to_ignore", "ignore_case", "ignore_punctuation")}


def test_acc_takes_the_summed_loglikelihood_and_acc_norm_divides_by_characters():
    choices = [" a", " a much longer answer"]
    lls = [-3.0, -10.0]  # per character: -1.5 vs -0.48
    assert multiple_choice_scores(lls, choices, 0) == {"acc": 1.0, "acc_norm": 0.0}
    assert multiple_choice_scores(lls, choices, 1) == {"acc": 0.0, "acc_norm": 1.0}
    assert multiple_choice_scores([-1.0, -1.0], [" x", " y"], 0)["acc"] == 1.0  # ties go to the first
    assert multiple_choice_scores(lls, choices, [0, 1]) == {"acc": 1.0, "acc_norm": 1.0}


def test_mc2_is_the_normalised_mass_of_the_true_choices():
    lls = [math.log(0.2), math.log(0.1), math.log(0.3), math.log(0.4)]
    assert mc2(lls, [1, 1, 0, 0]) == pytest.approx(0.3 / 1.0)
    assert mc2([0.0, 0.0], [1, 0]) == pytest.approx(0.5)
    with pytest.raises(MindsetError, match="one label per choice"):
        mc2([0.0], [1, 0])


@pytest.mark.parametrize(
    "output, strict, flexible",
    [
        ("Ava has 3 + 5 = 8 apples now.\n#### 8", "8", "8"),
        ("The total is $1,200.\n#### 1,200", "1,200", "1,200"),
        ("I think it is 12 or maybe 14", "[invalid]", "14"),
        ("#### -7", "-7", "-7"),
        ("no number at all", "[invalid]", "[invalid]"),
    ],
)
def test_gsm8k_filters(output, strict, flexible):
    assert apply_filters(output, STRICT) == strict
    assert apply_filters(output, FLEXIBLE) == flexible


def test_gsm8k_exact_match_ignores_commas_dollars_the_reasoning_and_a_final_period():
    reference = "Ava has 1000 + 200 = 1200 apples.\n#### 1200"
    assert exact_match("1,200", reference, **GSM_OPTIONS) == 1.0
    assert exact_match("$1200.", reference, **GSM_OPTIONS) == 1.0
    assert exact_match("120", reference, **GSM_OPTIONS) == 0.0
    assert exact_match("[invalid]", reference, **GSM_OPTIONS) == 0.0
    assert exact_match("ABC", "abc", ignore_case=True) == 1.0 and exact_match("ABC", "abc") == 0.0
    assert exact_match("a, b!", "ab", ignore_punctuation=True, regexes_to_ignore=[" "]) == 1.0


def test_regex_filter_keeps_the_first_non_empty_group_of_a_tuple_match():
    assert regex_filter("x 5 y 17", r"(-?[$0-9.,]{2,})|(-?[0-9]+)", group_select=-1) == "17"
    assert regex_filter("x 5", r"(-?[$0-9.,]{2,})|(-?[0-9]+)", group_select=0) == "5"


def test_standard_error_is_the_sample_standard_deviation_over_root_n():
    values = [1.0, 0.0, 1.0, 1.0, 0.0]
    mean, se = mean_and_stderr(values)
    assert mean == pytest.approx(0.6)
    assert se == pytest.approx(statistics.stdev(values) / math.sqrt(5))
    assert mean_and_stderr([1.0]) == (1.0, None)
    with pytest.raises(MindsetError):
        mean_and_stderr([])
