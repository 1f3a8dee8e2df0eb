"""Pure tests of the subsidy arithmetic and estimate checks (SUBSIDY.md): no fixtures, no database."""

from __future__ import annotations

import ast
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pmo.subsidy import rules
from pmo.subsidy.rules import (
    CATEGORY_RATES,
    ELIGIBLE_SYSTEMS,
    FISCAL_PROJECTS,
    SYSTEM_CATEGORY,
    BaseTableError,
    BodyKind,
    Breakpoint,
    Category,
    EstimateLine,
    FlagCode,
    Phase,
    Position,
    SubsidyInputError,
    System,
    allocate_bases,
    base_amount,
    category_bases,
    check_estimate,
    compute_grant,
    floor_to_1000,
    grant_from_request,
    parse_base_table,
    parse_keywords,
    population_class,
    population_classes,
    scale_to_budget,
    settle_grant,
    thousand_yen_to_yen,
    transfer_to_union,
)

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "seed" / "subsidy"
TABLE = parse_base_table((SEED / "base_table_illustrative.csv").read_text(encoding="utf-8"))
KEYWORDS = parse_keywords((SEED / "noncovered_keywords.txt").read_text(encoding="utf-8"))
HEADER = "fiscal_year,body_kind,system,population,amount_thousand_yen"
GENERAL, PENSION = Category.GENERAL, Category.PENSION_AND_CHILD_ALLOWANCE

pure = settings(database=None, deadline=None, max_examples=150)


def _fields(exc: pytest.ExceptionInfo) -> set[tuple[int | None, str]]:
    return {(getattr(p, "row", None), p.field) for p in exc.value.problems}


# --------------------------------------------------------------------------------------------
# Vocabulary


def test_categories_rates_and_eligibility_follow_the_contract():
    assert CATEGORY_RATES == {GENERAL: Fraction(2, 3), PENSION: Fraction(1, 1)}
    assert {s for s, c in SYSTEM_CATEGORY.items() if c is PENSION} == {
        System.NATIONAL_PENSION,
        System.SPECIAL_CHILD_ALLOWANCE,
    }
    assert {str(s) for s in ELIGIBLE_SYSTEMS[BodyKind.PREFECTURE]} == {
        "生活保護", "障害者福祉", "特別児童扶養手当", "児童福祉", "健康管理",
    }  # fmt: skip
    assert len(ELIGIBLE_SYSTEMS[BodyKind.MUNICIPALITY]) == 9
    assert ELIGIBLE_SYSTEMS[BodyKind.UNION] == frozenset()
    assert FISCAL_PROJECTS[2014].phases == (Phase.DESIGN, Phase.DEVELOPMENT, Phase.UNIT_TEST)
    assert FISCAL_PROJECTS[2015].phases == (Phase.INTEGRATION_TEST, Phase.SYSTEM_TEST, Phase.LINKAGE_TEST)
    assert FISCAL_PROJECTS[2016].phases == (Phase.OPERATIONAL_TEST,)


def test_module_is_pure_and_float_free():
    tree = ast.parse(Path(rules.__file__).read_text(encoding="utf-8"))
    imported = {
        (node.module if isinstance(node, ast.ImportFrom) else alias.name).split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    }
    assert not imported & {"flask", "sqlalchemy", "os", "pathlib", "datetime", "time", "random", "open"}
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, float)]
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id in ("float", "open")]


# --------------------------------------------------------------------------------------------
# Seed data


def test_illustrative_table_covers_every_year_kind_and_eligible_system():
    assert len(TABLE.curves) == 3 * (5 + 9)
    assert TABLE.fiscal_years == {2014, 2015, 2016}
    for key, points in TABLE.curves.items():
        assert key.system in ELIGIBLE_SYSTEMS[key.body_kind]
        assert 4 <= len(points) <= 6
        assert points[0].population == 0
        assert points[-1].population == 3_000_000


def test_seed_table_header_is_exact():
    first = (SEED / "base_table_illustrative.csv").read_text(encoding="utf-8").splitlines()[0]
    assert first == HEADER


def test_keyword_seed_holds_every_noncovered_item():
    for word in ("システム影響度調査", "調達仕様書作成支援", "工程管理支援", "特定個人情報保護評価", "PIA",
                 "条例による独自利用", "中間サーバーのハードウェア整備", "影響度調査", "独自利用", "中間サーバー機器"):  # fmt: skip
        assert word in KEYWORDS
    assert len(KEYWORDS) == len(set(KEYWORDS))


# --------------------------------------------------------------------------------------------
# Base amount: worked examples from the illustrative table


def test_population_zero_gets_the_first_breakpoint():
    # 双葉町: 2014 市区町村 国民健康保険, breakpoint (0, 3000千円).
    working = base_amount(TABLE, 2014, "municipality", "国民健康保険", 0)
    assert working.amount == 3_000_000
    assert type(working.amount) is int
    assert working.position is Position.BETWEEN


def test_between_breakpoints_is_interpolated_and_floored():
    # (10,000人, 6,000千円) – (50,000人, 12,000千円):
    # 6,000,000 + 6,000,000 × 2,345 / 40,000 = 6,000,000 + 351,750 = 6,351,750 → 6,351,000
    working = base_amount(TABLE, 2014, BodyKind.MUNICIPALITY, System.NATIONAL_HEALTH_INSURANCE, 12_345)
    assert (working.lower, working.upper) == (Breakpoint(10_000, 6_000_000), Breakpoint(50_000, 12_000_000))
    assert working.exact == Fraction(6_351_750)
    assert working.amount == 6_351_000
    assert working.explain()[-1] == "千円未満切り捨て: 6,351,000円"


def test_decimal_thousands_interpolated_exactly():
    # 2015 介護保険 (0, 1,437.5千円) – (10,000, 2,875千円):
    # 1,437,500 + 1,437,500 × 7,777 / 10,000 = 1,437,500 + 1,117,943.75 = 2,555,443.75 → 2,555,000
    working = base_amount(TABLE, 2015, "municipality", "介護保険", 7_777)
    assert working.exact == Fraction(255_544_375, 100)
    assert working.amount == 2_555_000


def test_beyond_last_breakpoint_continues_the_last_slope():
    # 国民健康保険 2014: (1,000,000, 60,000千円) – (3,000,000, 120,000千円): 30円/人.
    # 120,000,000 + 500,000 × 30 = 135,000,000
    working = base_amount(TABLE, 2014, "municipality", "国民健康保険", 3_500_000)
    assert working.position is Position.BEYOND_LAST
    assert working.slope == 30
    assert working.amount == 135_000_000
    # 2016 都道府県 健康管理 (2,000,000, 1,900千円) – (3,000,000, 2,700千円): 0.8円/人.
    # 東京都 14,047,594人: 2,700,000 + 11,047,594 × 0.8 = 11,538,075.2 → 11,538,000
    assert base_amount(TABLE, 2016, "prefecture", "健康管理", 14_047_594).amount == 11_538_000


def test_every_breakpoint_gives_its_own_amount():
    for key, points in TABLE.curves.items():
        for point in points:
            working = base_amount(TABLE, *key, point.population)
            assert working.exact == point.amount
            assert working.amount == floor_to_1000(point.amount)
    last = base_amount(TABLE, 2014, "municipality", "国民健康保険", 3_000_000)
    assert (last.position, last.amount) == (Position.BETWEEN, 120_000_000)


def test_below_first_breakpoint_uses_first_line_but_never_below_zero():
    rows = ["2014,municipality,介護保険,1000,1000", "2014,municipality,介護保険,2000,3000"]
    table = parse_base_table("\n".join([HEADER, *rows]))
    # slope 2,000円/人: 1,000,000 − 400 × 2,000 = 200,000
    working = base_amount(table, 2014, "municipality", "介護保険", 600)
    assert (working.position, working.amount) == (Position.BELOW_FIRST, 200_000)
    # 1,000,000 − 900 × 2,000 = −800,000 → 0
    working = base_amount(table, 2014, "municipality", "介護保険", 100)
    assert working.line_value == -800_000
    assert (working.exact, working.amount) == (0, 0)


def test_base_amount_refuses_missing_curve_and_bad_input():
    with pytest.raises(SubsidyInputError) as exc:
        base_amount(TABLE, 2014, "prefecture", "国民年金", 10)
    assert "基準額表がありません" in exc.value.problems[0].message
    with pytest.raises(SubsidyInputError) as exc:
        base_amount(TABLE, 2014, "ward", "住基", -1)
    assert {p.field for p in exc.value.problems} == {"body_kind", "system", "population"}


# --------------------------------------------------------------------------------------------
# Base table validation


def test_falling_table_is_refused_whole_with_row_numbers():
    text = "\n".join(
        [
            HEADER,
            "2014,municipality,国民健康保険,0,3000",  # 2
            "2014,municipality,国民健康保険,10000,6000",  # 3
            "2014,municipality,国民健康保険,50000,5000",  # 4: falls below row 3
            "2014,municipality,介護保険,0,100",  # 5
            "2014,municipality,介護保険,0,200",  # 6: duplicate population
            "2014,prefecture,国民年金,0,100",  # 7: not a prefecture system
            "2014,prefecture,国民年金,10,100.0005",  # 8: and half a yen
            "2014,municipality,健康管理,0,100",  # 9: a single breakpoint
            "2013,municipal,X,-5,abc",  # 10: everything wrong
        ]
    )
    with pytest.raises(BaseTableError) as exc:
        parse_base_table(text)
    assert _fields(exc) == {
        (4, "amount_thousand_yen"),
        (6, "population"),
        (7, "system"),
        (8, "system"),
        (8, "amount_thousand_yen"),
        (9, "population"),
        (10, "fiscal_year"),
        (10, "body_kind"),
        (10, "system"),
        (10, "population"),
        (10, "amount_thousand_yen"),
    }
    falling = next(p for p in exc.value.problems if p.row == 4)
    assert "3行目" in falling.message and "5,000千円" in falling.message and "6,000千円" in falling.message
    single = next(p for p in exc.value.problems if p.row == 9)
    assert "少なくとも2つ" in single.message
    rows = [p.row for p in exc.value.problems]
    assert rows == sorted(rows)


def test_rows_out_of_order_are_sorted_and_blank_lines_keep_numbering():
    text = f"{HEADER}\n2014,municipality,介護保険,10000,5000\n\n2014,municipality,介護保険,0,2500\n"
    table = parse_base_table(text)
    points = table.curve(2014, BodyKind.MUNICIPALITY, System.LONG_TERM_CARE)
    assert [(p.population, p.amount, p.row) for p in points] == [(0, 2_500_000, 4), (10_000, 5_000_000, 2)]


def test_header_is_required():
    with pytest.raises(BaseTableError) as exc:
        parse_base_table("2014,municipality,国民健康保険,0,3000\n2014,municipality,国民健康保険,10,3000\n")
    assert {p.row for p in exc.value.problems} == {1}
    with pytest.raises(BaseTableError) as exc:
        parse_base_table("")
    assert exc.value.problems[0].row == 1


def test_dict_rows_count_the_header_as_row_one():
    rows = [
        {"fiscal_year": "2014", "body_kind": "municipality", "system": "国民年金", "population": "0",
         "amount_thousand_yen": "500"},
        {"fiscal_year": "2014", "body_kind": "municipality", "system": "国民年金", "population": "1,000",
         "amount_thousand_yen": ""},
    ]  # fmt: skip
    with pytest.raises(BaseTableError) as exc:
        parse_base_table(rows)
    assert _fields(exc) == {(3, "population"), (3, "amount_thousand_yen")}


@pytest.mark.parametrize(
    ("text", "yen"),
    [("3000", 3_000_000), ("1437.5", 1_437_500), ("0.001", 1), ("12.3400", 12_340), ("0", 0)],
)
def test_thousand_yen_parses_exactly(text, yen):
    assert thousand_yen_to_yen(text) == yen
    assert type(thousand_yen_to_yen(text)) is int


@pytest.mark.parametrize("text", ["0.0005", "-1", "1e3", "1,000", "", "abc", "NaN"])
def test_thousand_yen_refuses_non_yen(text):
    with pytest.raises(ValueError):
        thousand_yen_to_yen(text)


# --------------------------------------------------------------------------------------------
# Budget, allocations, unions


def test_budget_scaling_example():
    # factor = 2,500,000 / 3,234,000 = 1250/1617
    # 1,234,000 × 1250/1617 = 953,927.0… → 953,000; 2,000,000 × 1250/1617 = 1,546,072.9… → 1,546,000
    scaled, factor = scale_to_budget({"A": 1_234_000, "B": 2_000_000}, 2_500_000)
    assert factor == Fraction(1250, 1617)
    assert scaled == {"A": 953_000, "B": 1_546_000}
    assert scale_to_budget({"A": 1_000}, 1_000) == ({"A": 1_000}, Fraction(1))


def test_allocation_moves_base_within_a_category():
    # 2014, 12,345人: 国保 6,351,000; 介護保険 5,000,000 + 5,000,000 × 2,345/40,000 = 5,293,125 → 5,293,000
    bases = {s: base_amount(TABLE, 2014, "municipality", s, 12_345).amount for s in ("国民健康保険", "介護保険")}
    assert bases == {"国民健康保険": 6_351_000, "介護保険": 5_293_000}
    assert category_bases(bases) == {GENERAL: 11_644_000, PENSION: 0}
    costs = {"国民健康保険": 9_000_000, "介護保険": 1_000_000}
    # Without 配分: 2/3 × (6,351,000 + 1,000,000) = 4,900,666.6… → 4,900,000
    assert compute_grant(bases, costs).categories[GENERAL].grant == 4_900_000
    # With 配分 国保 10,644,000 + 介護 1,000,000 = 11,644,000: 2/3 × 10,000,000 → 6,666,000
    allocated = allocate_bases(bases, {"国民健康保険": 10_644_000, "介護保険": 1_000_000})
    result = compute_grant(allocated, costs).categories[GENERAL]
    assert (result.grant, result.local_share) == (6_666_000, 3_334_000)
    with pytest.raises(SubsidyInputError) as exc:  # 1,000 yen too much
        allocate_bases(bases, {"国民健康保険": 10_645_000, "介護保険": 1_000_000})
    assert [p.field for p in exc.value.problems] == ["allocations"]
    with pytest.raises(SubsidyInputError):  # 介護 keeps its own 5,293,000, so the total exceeds
        allocate_bases(bases, {"国民健康保険": 10_644_000})
    with pytest.raises(SubsidyInputError) as exc:
        allocate_bases(bases, {"国民年金": 1_000, "介護保険": -1})
    assert {p.field for p in exc.value.problems} == {"allocations.国民年金", "allocations.介護保険"}


def test_union_transfer_example():
    member, union = transfer_to_union({"介護保険": 5_293_000}, {"介護保険": 1_000_000}, {"介護保険": 3_000_000})
    assert member == {System.LONG_TERM_CARE: 2_293_000}
    assert union == {System.LONG_TERM_CARE: 4_000_000}
    with pytest.raises(SubsidyInputError) as exc:
        transfer_to_union({"介護保険": 5_293_000}, {}, {"介護保険": 5_294_000, "国民健康保険": 1})
    assert {p.field for p in exc.value.problems} == {"transfers.介護保険", "transfers.国民健康保険"}


def test_union_grant_uses_only_transferred_base():
    request = {"body": "012033", "fiscal_year": 2014, "costs": {"介護保険": 4_000_000}}
    # base 3,000,000 by transfer; 2/3 × min(3,000,000, 4,000,000) = 2,000,000
    out = grant_from_request(request, 50_000, "union", TABLE, base_adjustments={"介護保険": 3_000_000})
    assert out["categories"][GENERAL] == {
        "base": 3_000_000, "eligible": 4_000_000, "grant": 2_000_000, "local_share": 1_000_000,
    }  # fmt: skip
    with pytest.raises(SubsidyInputError) as exc:
        grant_from_request(request, 50_000, "union", TABLE)
    assert [p.field for p in exc.value.problems] == ["costs.介護保険"]


# --------------------------------------------------------------------------------------------
# Grant


def test_grant_from_request_worked_example():
    # 2014 市区町村, 12,345人: 国保 base 6,351,000; 国民年金 (10,000, 1,000千円)–(50,000, 2,000千円):
    # 1,000,000 + 1,000,000 × 2,345/40,000 = 1,058,625 → 1,058,000.
    # 一般分: eligible 1,500,000 − 100,000 = 1,400,000; 2/3 × 1,400,000 = 933,333.3… → 933,000; local 467,000
    # 10/10: min(1,058,000, 2,000,000) = 1,058,000
    request = {
        "body": "012033",
        "fiscal_year": 2014,
        "costs": {"国民健康保険": 1_500_000, "国民年金": 2_000_000},
        "other_income": {"国民健康保険": 100_000},
    }
    out = grant_from_request(request, 12_345, "municipality", TABLE)
    assert out == {
        "categories": {
            "一般分": {"base": 6_351_000, "eligible": 1_400_000, "grant": 933_000, "local_share": 467_000},
            "国民年金・特別児童扶養手当分": {
                "base": 1_058_000, "eligible": 2_000_000, "grant": 1_058_000, "local_share": 0,
            },
        }
    }  # fmt: skip
    assert all(type(v) is int for cat in out["categories"].values() for v in cat.values())


def test_grant_from_request_population_zero():
    # 双葉町 (075469), 0人: 国保 base 3,000,000; cost 3,600,000 → 2/3 × 3,000,000 = 2,000,000
    out = grant_from_request({"body": "075469", "fiscal_year": 2014, "costs": {"国民健康保険": 3_600_000}},
                             0, "municipality", TABLE)  # fmt: skip
    assert out["categories"]["一般分"] == {
        "base": 3_000_000, "eligible": 3_600_000, "grant": 2_000_000, "local_share": 1_000_000,
    }  # fmt: skip
    assert out["categories"]["国民年金・特別児童扶養手当分"]["grant"] == 0


def test_grant_from_request_lists_every_problem_with_its_path():
    request = {
        "body": "012034",  # wrong check digit
        "fiscal_year": True,
        "costs": {"住民基本台帳": 1, "国民健康保険": -1, "介護保険": 1.5, "国民年金": "100", "健康管理": True},
        "other_income": {"生活保護": 10},
        "allocation": {},
    }
    with pytest.raises(SubsidyInputError) as exc:
        grant_from_request(request, 1_000, "municipality", TABLE)
    assert {p.field for p in exc.value.problems} == {
        "body", "fiscal_year", "costs.住民基本台帳", "costs.国民健康保険", "costs.介護保険", "costs.国民年金",
        "costs.健康管理", "other_income.生活保護", "allocation",
    }  # fmt: skip
    assert all(p.message for p in exc.value.problems)


def test_grant_from_request_refuses_allocation_above_category_base():
    request = {
        "body": "012033",
        "fiscal_year": 2014,
        "costs": {"国民健康保険": 1_000_000},
        "allocations": {"国民健康保険": 6_352_000},
    }
    with pytest.raises(SubsidyInputError) as exc:
        grant_from_request(request, 12_345, "municipality", TABLE)
    assert [p.field for p in exc.value.problems] == ["allocations"]
    with pytest.raises(SubsidyInputError) as exc:  # 国民年金 is not a prefecture system
        grant_from_request({**request, "allocations": {}, "costs": {"国民年金": 1}}, 1, "prefecture", TABLE)
    assert [p.field for p in exc.value.problems] == ["costs.国民年金"]


def test_full_rate_category_has_no_local_share_even_with_rounding():
    # 10/10: min(1,058,000, 1,234,567) → 1,058,000; min(500,000, 432,109) → 432,109; Σ 1,490,109 → 1,490,000
    result = compute_grant({"国民年金": 1_058_000, "特別児童扶養手当": 500_000},
                           {"国民年金": 1_234_567, "特別児童扶養手当": 432_109}).categories[PENSION]  # fmt: skip
    assert (result.eligible, result.eligible_within_base) == (1_666_676, 1_490_109)
    assert (result.grant, result.local_share) == (1_490_000, 0)


def test_later_round_only_uses_base_not_yet_granted():
    bases = {"介護保険": 3_000_000}  # cap 2/3 × 3,000,000 = 2,000,000
    first = compute_grant(bases, {"介護保険": 2_250_000}).categories[GENERAL]
    assert first.grant == 1_500_000
    second = compute_grant(bases, {"介護保険": 3_000_000}, already_granted={GENERAL: first.grant})
    assert second.categories[GENERAL].round_cap == 500_000
    assert second.categories[GENERAL].grant == 500_000
    third = compute_grant(bases, {"介護保険": 3_000_000}, already_granted={"一般分": 2_000_000})
    assert third.categories[GENERAL].grant == 0


def test_settlement_never_exceeds_the_grant():
    assert settle_grant(2_000_000, 1_800_000) == rules.Settlement(2_000_000, 1_800_000, 1_800_000, 200_000)
    assert settle_grant(2_000_000, 2_100_000).settled == 2_000_000
    with pytest.raises(SubsidyInputError):
        settle_grant(2_000_000, -1)


# --------------------------------------------------------------------------------------------
# Properties

yen = st.integers(min_value=0, max_value=10**10)
systems = st.sampled_from(list(System))


@st.composite
def curve_csv(draw):
    populations = sorted(draw(st.sets(st.integers(0, 5_000_000), min_size=2, max_size=6)))
    amount, lines = draw(st.integers(0, 10**8)), []
    for population in populations:
        text = f"{Decimal(amount).scaleb(-3).normalize():f}"
        lines.append(f"2014,municipality,介護保険,{population},{text}")
        amount += draw(st.integers(0, 10**8))
    return HEADER + "\n" + "\n".join(lines)


@pure
@given(curve_csv(), st.integers(0, 10_000_000), st.integers(0, 10_000_000))
def test_base_never_falls_as_population_rises(text, a, b):
    table = parse_base_table(text)
    low, high = sorted((a, b))
    first = base_amount(table, 2014, "municipality", "介護保険", low)
    second = base_amount(table, 2014, "municipality", "介護保険", high)
    assert first.exact <= second.exact
    assert first.amount <= second.amount
    for working in (first, second):
        assert type(working.amount) is int
        assert working.amount % 1000 == 0
        assert working.amount <= working.exact < working.amount + 1000


@pure
@given(st.sampled_from(sorted(TABLE.curves)), st.integers(0, 15_000_000), st.integers(0, 15_000_000))
def test_illustrative_bases_rise_with_population(key, a, b):
    low, high = sorted((a, b))
    assert (
        base_amount(TABLE, *key, low).amount <= base_amount(TABLE, *key, high).amount
    )


@pure
@given(
    st.dictionaries(systems, st.integers(0, 10**7).map(lambda n: n * 1000), max_size=9),
    st.dictionaries(systems, yen, max_size=9),
    st.dictionaries(systems, yen, max_size=9),
)
def test_grant_bounded_by_rate_times_base_and_eligible_cost(bases, costs, income):
    result = compute_grant(bases, costs, income)
    for category, grant in result.categories.items():
        rate = CATEGORY_RATES[category]
        assert type(grant.grant) is int and type(grant.local_share) is int
        assert grant.grant <= rate * grant.base
        assert grant.grant <= rate * grant.eligible
        assert grant.grant % 1000 == 0
        assert 0 <= rate * grant.eligible_within_base - grant.grant < 1000
        assert grant.local_share >= 0
        if rate == 1:
            assert grant.local_share == 0
        else:
            assert grant.local_share == grant.eligible_within_base - grant.grant
        expected_eligible = sum(
            max(0, costs.get(s, 0) - income.get(s, 0)) for s in costs if SYSTEM_CATEGORY[s] is category
        )
        assert grant.eligible == expected_eligible


@pure
@given(st.dictionaries(systems, st.integers(0, 10**7).map(lambda n: n * 1000), min_size=1), yen, yen, yen)
def test_rounds_never_grant_more_than_rate_times_base(bases, cost1, cost2, cost3):
    granted = {c: 0 for c in Category}
    for cost in (cost1, cost2, cost3):
        costs = {s: cost for s in bases}
        result = compute_grant(bases, costs, already_granted=granted)
        granted = {c: granted[c] + result.categories[c].grant for c in Category}
    for category, total in granted.items():
        assert total <= CATEGORY_RATES[category] * category_bases(bases)[category]


@pure
@given(st.lists(yen, max_size=12), yen)
def test_budget_scaling_stays_within_budget(values, budget):
    bases = dict(enumerate(values))
    scaled, factor = scale_to_budget(bases, budget)
    if sum(values) <= budget:
        assert (scaled, factor) == (bases, 1)
    else:
        assert sum(scaled.values()) <= budget
        assert factor == Fraction(budget, sum(values))
        assert all(v % 1000 == 0 and v <= bases[k] and type(v) is int for k, v in scaled.items())


@pure
@given(st.one_of(st.integers(-(10**12), 10**12), st.fractions(max_denominator=10**6)))
def test_floor_to_1000_only_goes_down_to_whole_thousands(value):
    floored = floor_to_1000(value)
    assert type(floored) is int
    assert floored % 1000 == 0
    assert floored <= value < floored + 1000


@pure
@given(yen)
def test_thousand_yen_round_trip(amount):
    assert thousand_yen_to_yen(f"{Decimal(amount).scaleb(-3):f}") == amount


def test_floats_are_refused_on_the_money_path():
    with pytest.raises(TypeError):
        floor_to_1000(1000.0)
    with pytest.raises(SubsidyInputError):
        compute_grant({"介護保険": 1000}, {"介護保険": 1000.0})
    with pytest.raises(TypeError):
        EstimateLine("設計", "設計", "SE", 800_000, 1.5, 1_200_000, "人月")


# --------------------------------------------------------------------------------------------
# Estimates


def clean_line(**changes) -> EstimateLine:
    values = dict(phase="設計", work_item="個人番号検索機能の設計", worker_class="SE", unit_price=800_000,
                  effort=Decimal("1.5"), amount=1_200_000, unit="人月")  # fmt: skip
    return EstimateLine(**{**values, **changes})


PEERS = dict(
    peer_unit_prices={"SE": [700_000, 800_000, 900_000]},
    peer_efforts=[1, 2, 3],
    peer_costs=[1_000_000, 1_500_000, 2_000_000],
)


def codes(flags) -> list[FlagCode]:
    return [f.code for f in flags]


def test_clean_estimate_raises_no_flag():
    flags = check_estimate([clean_line()], fiscal_year=2014, stated_total=1_200_000,
                           noncovered_keywords=KEYWORDS, **PEERS)  # fmt: skip
    assert flags == []
    assert check_estimate([clean_line(phase="システム設計")], fiscal_year=2014, noncovered_keywords=KEYWORDS) == []


def test_lump_sum_line_is_flagged():
    line = clean_line(work_item="システム改修一式", unit_price=None, effort=None, unit=None, amount=5_000_000)
    flags = check_estimate([line], fiscal_year=2014)
    assert codes(flags) == [FlagCode.LUMP_SUM]
    assert flags[0].line == 1 and "一式" in flags[0].message
    discount = clean_line(work_item="出精値引き", unit_price=None, effort=None, unit=None, amount=-100_000)
    assert check_estimate([discount], fiscal_year=2014) == []


def test_arithmetic_is_exact():
    flags = check_estimate([clean_line(), clean_line(amount=1_200_001)], fiscal_year=2014)
    assert codes(flags) == [FlagCode.ARITHMETIC]
    assert flags[0].line == 2 and "1,200,000" in flags[0].message
    odd = clean_line(unit_price=333_333, effort=Decimal("1.5"), amount=499_999)  # 499,999.5 exactly
    assert codes(check_estimate([odd], fiscal_year=2014)) == [FlagCode.ARITHMETIC]


def test_total_mismatch_is_flagged():
    flags = check_estimate([clean_line(), clean_line()], fiscal_year=2014, stated_total=2_500_000)
    assert codes(flags) == [FlagCode.TOTAL_MISMATCH]
    assert flags[0].line is None and "100,000" in flags[0].message


@pytest.mark.parametrize("item", ["システム影響度調査", "調達仕様書作成支援", "ＰＩＡ実施支援", "中間サーバー機器の導入"])
def test_noncovered_work_is_flagged(item):
    flags = check_estimate([clean_line(work_item=item)], fiscal_year=2014, noncovered_keywords=KEYWORDS)
    assert codes(flags) == [FlagCode.NONCOVERED]


def test_wrong_fiscal_year_phase_is_flagged():
    flags = check_estimate([clean_line(phase="総合運用テスト"), clean_line(phase="要件定義")], fiscal_year=2014)
    assert codes(flags) == [FlagCode.WRONG_PHASE, FlagCode.WRONG_PHASE]
    assert "平成28年度事業" in flags[0].message
    assert check_estimate([clean_line(phase="総合運用テスト")], fiscal_year=2016) == []
    with pytest.raises(SubsidyInputError):
        check_estimate([clean_line()], fiscal_year=2013)


def test_unit_price_far_above_peers_is_flagged():
    # median 800,000 × 1.5 = 1,200,000: strictly above flags, equal does not
    high = clean_line(unit_price=1_300_000, effort=1, amount=1_300_000)
    assert codes(check_estimate([high], fiscal_year=2014, **PEERS)) == [FlagCode.UNIT_PRICE_ABOVE_PEERS]
    equal = clean_line(unit_price=1_200_000, effort=1, amount=1_200_000)
    assert check_estimate([equal], fiscal_year=2014, **PEERS) == []
    # 人日 compared per 人月: 65,000 × 20 = 1,300,000
    daily = clean_line(unit_price=65_000, effort=20, amount=1_300_000, unit="人日")
    assert codes(check_estimate([daily], fiscal_year=2014, **PEERS)) == [FlagCode.UNIT_PRICE_ABOVE_PEERS]
    few = {"peer_unit_prices": {"SE": [100_000, 100_000]}}
    assert check_estimate([high], fiscal_year=2014, **few) == []
    loose = rules.PeerSettings(multiple=Fraction(2))
    assert check_estimate([high], fiscal_year=2014, settings=loose, **PEERS) == []


def test_effort_and_cost_far_above_peers_are_flagged():
    # 3.5人月 > 1.5 × median 2人月 = 3人月; 2,800,000円 > 1.5 × median 1,500,000円 = 2,250,000円
    big = clean_line(effort=Decimal("3.5"), amount=2_800_000)
    flags = check_estimate([big], fiscal_year=2014, **PEERS)
    assert codes(flags) == [FlagCode.EFFORT_ABOVE_PEERS, FlagCode.COST_ABOVE_PEERS]
    assert all(f.line is None for f in flags)
    # 70人日 = 3.5人月 at 40,000円/人日 = 2,800,000
    daily = clean_line(unit_price=40_000, effort=70, amount=2_800_000, unit="人日")
    assert FlagCode.EFFORT_ABOVE_PEERS in codes(check_estimate([daily], fiscal_year=2014, **PEERS))
    # 3人月 = exactly 1.5 × 2: not flagged
    at_limit = clean_line(effort=3, amount=2_400_000)
    assert check_estimate([at_limit], fiscal_year=2014, peer_efforts=[1, 2, 3]) == []


# --------------------------------------------------------------------------------------------
# Population classes


@pytest.mark.parametrize(
    ("population", "code", "label"),
    [
        (0, "pop_0_10000", "1万人未満"),
        (9_999, "pop_0_10000", "1万人未満"),
        (10_000, "pop_10000_50000", "1万人以上5万人未満"),
        (99_999, "pop_50000_100000", "5万人以上10万人未満"),
        (300_000, "pop_300000_1000000", "30万人以上100万人未満"),
        (14_047_594, "pop_1000000_plus", "100万人以上"),
    ],
)
def test_population_class(population, code, label):
    found = population_class(population)
    assert (found.code, found.label) == (code, label)


def test_population_classes_are_editable():
    classes = population_classes((5_000, 200_000))
    assert [c.code for c in classes] == ["pop_0_5000", "pop_5000_200000", "pop_200000_plus"]
    assert population_class(5_000, classes).label == "5,000人以上20万人未満"
    with pytest.raises(ValueError):
        population_classes((10_000, 10_000))
