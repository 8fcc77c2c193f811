"""World capitals, four-way multiple choice: "What is the capital of Kenya?" — Nairobi among three other capitals.

The table holds countries whose capital is undisputed and single (no Bolivia, Netherlands, South Africa,
Israel, Côte d'Ivoire, Sri Lanka, ...) and no name that is also
something else's (Georgia), as of 2024. Distractors are other capitals from the table, drawn
from the seed. Chance: 1/4.
"""

from __future__ import annotations

import random

CAPITALS = {
    "Afghanistan": "Kabul", "Albania": "Tirana", "Algeria": "Algiers", "Angola": "Luanda",
    "Argentina": "Buenos Aires", "Armenia": "Yerevan", "Australia": "Canberra", "Austria": "Vienna",
    "Azerbaijan": "Baku", "Bangladesh": "Dhaka", "Belarus": "Minsk", "Belgium": "Brussels",
    "Bosnia and Herzegovina": "Sarajevo", "Botswana": "Gaborone", "Brazil": "Brasília", "Bulgaria": "Sofia",
    "Cambodia": "Phnom Penh", "Cameroon": "Yaoundé", "Canada": "Ottawa", "Chad": "N'Djamena",
    "Chile": "Santiago", "China": "Beijing", "Colombia": "Bogotá", "Costa Rica": "San José",
    "Croatia": "Zagreb", "Cuba": "Havana", "Cyprus": "Nicosia", "Czech Republic": "Prague",
    "Denmark": "Copenhagen", "Dominican Republic": "Santo Domingo", "Ecuador": "Quito", "Egypt": "Cairo",
    "El Salvador": "San Salvador", "Estonia": "Tallinn", "Ethiopia": "Addis Ababa", "Finland": "Helsinki",
    "France": "Paris", "Germany": "Berlin", "Ghana": "Accra",
    "Greece": "Athens", "Guatemala": "Guatemala City", "Haiti": "Port-au-Prince", "Honduras": "Tegucigalpa",
    "Hungary": "Budapest", "Iceland": "Reykjavik", "India": "New Delhi", "Iran": "Tehran",
    "Iraq": "Baghdad", "Ireland": "Dublin", "Italy": "Rome", "Jamaica": "Kingston",
    "Japan": "Tokyo", "Jordan": "Amman", "Kazakhstan": "Astana", "Kenya": "Nairobi",
    "Kuwait": "Kuwait City", "Kyrgyzstan": "Bishkek", "Laos": "Vientiane", "Latvia": "Riga",
    "Lebanon": "Beirut", "Libya": "Tripoli", "Lithuania": "Vilnius", "Madagascar": "Antananarivo",
    "Malawi": "Lilongwe", "Mali": "Bamako", "Malta": "Valletta", "Mexico": "Mexico City",
    "Mongolia": "Ulaanbaatar", "Montenegro": "Podgorica", "Morocco": "Rabat", "Mozambique": "Maputo",
    "Namibia": "Windhoek", "Nepal": "Kathmandu", "New Zealand": "Wellington", "Nicaragua": "Managua",
    "Niger": "Niamey", "Nigeria": "Abuja", "North Korea": "Pyongyang", "North Macedonia": "Skopje",
    "Norway": "Oslo", "Oman": "Muscat", "Pakistan": "Islamabad", "Panama": "Panama City",
    "Paraguay": "Asunción", "Peru": "Lima", "Philippines": "Manila", "Poland": "Warsaw",
    "Portugal": "Lisbon", "Qatar": "Doha", "Romania": "Bucharest", "Russia": "Moscow",
    "Rwanda": "Kigali", "Saudi Arabia": "Riyadh", "Senegal": "Dakar", "Serbia": "Belgrade",
    "Slovakia": "Bratislava", "Slovenia": "Ljubljana", "Somalia": "Mogadishu", "South Korea": "Seoul",
    "Spain": "Madrid", "Sweden": "Stockholm", "Syria": "Damascus",
    "Tajikistan": "Dushanbe", "Thailand": "Bangkok", "Tunisia": "Tunis", "Turkey": "Ankara",
    "Turkmenistan": "Ashgabat", "Uganda": "Kampala", "Ukraine": "Kyiv", "United Kingdom": "London",
    "United States": "Washington, D.C.", "Uruguay": "Montevideo", "Uzbekistan": "Tashkent", "Venezuela": "Caracas",
    "Vietnam": "Hanoi", "Zambia": "Lusaka", "Zimbabwe": "Harare",
}

CHANCE = {"acc": 0.25, "acc_norm": 0.25}
N_TRAIN = 20  # countries kept for few-shot examples; the rest is the test split


def the(country: str) -> str:
    """'the United States', 'the Philippines', 'Kenya'."""
    plural_or_union = ("United ", "Republic", "Philippines", "Czech")
    return f"the {country}" if country.startswith(plural_or_union) or country.endswith(plural_or_union) else country


def question(country: str, rnd: random.Random) -> dict:
    capital = CAPITALS[country]
    others = rnd.sample([c for k, c in CAPITALS.items() if k != country], 3)
    choices = others + [capital]
    rnd.shuffle(choices)
    return {"country": the(country), "choices": choices, "label": choices.index(capital)}


def generate(seed: int, n_test: int | None = None, n_train: int | None = None) -> tuple[list[dict], list[dict]]:
    """(train, test): disjoint countries. The test split is every country not in train (at most n_test)."""
    rnd = random.Random(seed)
    countries = sorted(CAPITALS)
    rnd.shuffle(countries)
    k = N_TRAIN if n_train is None else min(n_train, len(countries) - 1)
    train = [question(c, rnd) for c in countries[:k]]
    test = [question(c, rnd) for c in countries[k:]][:n_test]
    return train, test


TASK = {
    "output_type": "multiple_choice",
    "num_fewshot": 3,
    "doc_to_text": "Question: What is the capital of {{country}}?\nAnswer:",
    "doc_to_choice": "choices",
    "doc_to_target": "label",
    "metric_list": [
        {"metric": "acc", "aggregation": "mean", "higher_is_better": True},
        {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True},
    ],
}
