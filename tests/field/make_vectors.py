"""Writes tests/field/vectors.json: the shared test vectors of the field answers (Python and JS run every one).

Each vector's input and its "check" (what the output must say, written by hand) live here; "expect" (the exact
output) is computed by the Python side, and only after its check holds. Re-run after changing the rules, the
tasks or the code on purpose, and read the diff:

    python tests/field/make_vectors.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE))

from runner import default_inputs, dumps, project, run, same  # noqa: E402

OUT = HERE / "vectors.json"
VECTORS: list[dict[str, Any]] = []


def v(name: str, fn: str, args: dict[str, Any], check: Any) -> None:
    VECTORS.append({"name": name, "fn": fn, "args": args, "check": check})


def parse(name: str, text: str, kind: str | None, check: list[str]) -> None:
    v(name, "parse_readings", {"text": text, **({"kind": kind} if kind else {})}, check)


def answer(**fields: Any) -> str:
    return json.dumps(fields)


def done(content: str, p: float | None = 0.9, finish: str | None = "stop") -> dict[str, Any]:
    return {"content": content, "finish_reason": finish, "decisive_probability": p}


# ---- parse_readings: the examples of the issue, then the ambiguity rules (docs/RULES.md) ----
parse("psi with a space", "435 PSI", "fault", ["pressure 435 psi"])
parse("psi glued", "435psi", "fault", ["pressure 435 psi"])
parse("spo2 percent", "SpO2 84%", "triage", ["spo2 84 %"])
parse("sats without unit", "sats 84", "triage", ["spo2 84 %"])
parse("glucose mg/dL alone", "45 mg/dL", "screening", ["glucose 45 mg/dL"])
parse("glucose mmol/L with word", "glucose 2.5 mmol/L", "screening", ["glucose 2.5 mmol/L"])
parse("mmol/L alone is glucose", "Fingerstick 2.4 mmol/L before breakfast", "screening", ["glucose 2.4 mmol/L"])
# a unit several quantities share (ppm: H2S or CO) takes the last quantity word before it in the same clause
parse("shared unit: the word a few words back", "H2S detector at the shale shakers reading 25 ppm", "fault",
      ["h2s 25 ppm"])
parse("shared unit: the nearest word wins", "gas round: CO low, H2S at the shakers 40 ppm", "fault", ["h2s 40 ppm"])
parse("shared unit: not past a clause break", "H2S detector tested. Reading 25 ppm", "fault", [])
parse("shared unit: not past another number", "H2S detector 2 reading 25 ppm", "fault", [])
parse("shared unit: not too far back",
      "H2S detector mounted high on the far side of the shale shaker room, reading 25 ppm", "fault", [])
parse("HR bare", "HR 38", "triage", ["heart_rate 38 bpm"])
parse("pulse bare", "pulse 38", "triage", ["heart_rate 38 bpm"])
parse("RR bare", "RR 32", "triage", ["resp_rate 32 breaths/min"])
parse("BP pair", "BP 85/50", "triage", ["sbp 85 mmHg", "dbp 50 mmHg"])
parse("celsius alone", "40.6 C", "triage", ["temp 40.6 °C"])
parse("fahrenheit alone", "104 F", "triage", ["temp 104 °F"])
parse("temp bare celsius", "temp 40.6", "triage", ["temp 40.6 °C"])
parse("temp bare fahrenheit (above 50)", "temp 104", "triage", ["temp 104 °F"])
parse("vibration mm/s", "vibration 7.1 mm/s", "fault", ["vibration 7.1 mm/s"])
parse("H2S ppm", "H2S 15 ppm", "fault", ["h2s 15 ppm"])
parse("LEL percent", "LEL 12%", "fault", ["lel 12 %"])
parse("GCS bare", "GCS 10", "triage", ["gcs 10 score"])
parse("GCS out of 15", "GCS 10/15", "triage", ["gcs 10 score"])
parse("a bare number is not a reading", "the reading was 84 at 0200", "triage", [])
parse("hours after a number are not a heart rate", "drifting for 2 hr 30 min", "fault", [])
parse("vital signs without separators", "SpO2 84 HR 38 RR 32", "triage",
      ["spo2 84 %", "heart_rate 38 bpm", "resp_rate 32 breaths/min"])
parse("oxygen flow is not a saturation", "on O2 2L via nasal cannula", "triage", [])
parse("unit then word", "15 ppm H2S", "fault", ["h2s 15 ppm"])
parse("percent LEL after the number", "12% LEL", "fault", ["lel 12 %LEL"])
parse("a medic's line, subscripts and degrees", "BP 84/52 mmHg, HR 132/min, RR 30/min, SpO₂ 86% on air, T 40.1 °C",
      "triage", ["sbp 84 mmHg", "dbp 52 mmHg", "heart_rate 132 /min", "resp_rate 30 /min", "spo2 86 %", "temp 40.1 °C"])
parse("negative equipment temperature", "ambient temp -5 C", "fault", ["equipment_temp -5 °C"])
parse("bearing temperature in fahrenheit", "DE bearing temp 200 F", "fault", ["bearing_temp 200 °F"])
parse("temp word in a fault is equipment", "oil temp 95 C", "fault", ["equipment_temp 95 °C"])
parse("temp word in a triage is the body's", "temp 39 C", "triage", ["temp 39 °C"])
parse("bar", "discharge pressure 30 bar", "fault", ["pressure 30 bar"])
parse("thousands separator", "1,200 psi at the standpipe", "fault", ["pressure 1200 psi"])
parse("glucose bare small is mmol/L", "glucose 2.5", "screening", ["glucose 2.5 mmol/L"])
parse("glucose bare large is mg/dL", "glucose 45", "screening", ["glucose 45 mg/dL"])
parse("a unit the quantity does not take", "HR 38 kg", "triage", [])
parse("megohms", "megger 0.4 MΩ, IR 250 megohms", "fault", ["insulation 0.4 MΩ", "insulation 250 MΩ"])
parse("milliohm is not megohm", "insulation 0.4 mΩ", "fault", [])
parse("amps in capitals only", "motor current 5 A; pump ran 5 a day", "fault", ["current 5 A"])
parse("colon and space before the unit", "SpO2: 84 %", "triage", ["spo2 84 %"])
parse("filler words", "sats of 84%, SpO2 is now 86%", "triage", ["spo2 84 %", "spo2 86 %"])
parse("oxygen with a unit is a saturation in triage", "oxygen 94%", "triage", ["spo2 94 %"])
parse("oxygen with a unit is a gas level in a fault", "oxygen 19%", "fault", ["o2 19 %"])
parse("inches per second", "vibration 0.3 in/s", "fault", ["vibration 0.3 in/s"])
parse("word glued to the number", "HR38", "triage", ["heart_rate 38 bpm"])
parse("no kind, an asset named: equipment", "pump discharge 435 psi, temp 60 C", None,
      ["pressure 435 psi", "equipment_temp 60 °C"])
parse("no kind, no asset: clinical", "temp 39 C", None, ["temp 39 °C"])
parse("a range reads its first number", "sats 84-86%", "triage", ["spo2 84 %"])
parse("offsets count code points", "🔥🔥 SpO2 84%", "triage", ["spo2 84 %"])
parse("percent alone is not a reading", "84% on room air, 50% burns", "triage", [])
parse("ppm alone is ambiguous", "reading 15 ppm", "fault", [])
parse("a duration after a bare number", "fever of 3 days, sats 2 times checked", "triage", [])
parse("a unit-like word after a bare number", "on O2 at 2 l/min", "triage", [])
parse("a reading then a duration", "HR 120 for 2 days", "triage", ["heart_rate 120 bpm"])
parse("blood pressure with its unit but no word", "85/50 mmHg", "triage", ["sbp 85 mmHg", "dbp 50 mmHg"])

# ---- readings_from_form ----
v("form spo2", "readings_from_form", {"fields": [{"quantity": "spo2", "value": 84, "unit": "%"}]}, ["spo2 84 %"])
v("form unit alias in another case", "readings_from_form",
  {"fields": [{"quantity": "glucose", "value": "2.5", "unit": "mmol/l"}]}, ["glucose 2.5 mmol/L"])
v("form blood pressure", "readings_from_form", {"fields": [{"quantity": "bp", "value": "120/80", "unit": "mmHg"}]},
  ["sbp 120 mmHg", "dbp 80 mmHg"])
v("form fahrenheit", "readings_from_form", {"fields": [{"quantity": "temp", "value": 104, "unit": "°F"}]},
  ["temp 104 °F"])
v("form psi in capitals", "readings_from_form", {"fields": [{"quantity": "pressure", "value": "435", "unit": "PSI"}]},
  ["pressure 435 psi"])
v("form default unit", "readings_from_form", {"fields": [{"quantity": "heart_rate", "value": 38}]},
  ["heart_rate 38 bpm"])
v("form empty unit", "readings_from_form", {"fields": [{"quantity": "gcs", "value": "10", "unit": ""}]},
  ["gcs 10 score"])
v("form unknown unit", "readings_from_form", {"fields": [{"quantity": "glucose", "value": 5, "unit": "mg/L"}]},
  {"error": 'unknown unit "mg/L" for glucose: use one of mg/dL, mmol/L'})
v("form unknown quantity", "readings_from_form", {"fields": [{"quantity": "sugar", "value": 5, "unit": "mg/dL"}]},
  {"error": 'unknown quantity "sugar": use one of spo2, heart_rate, resp_rate, sbp, dbp, temp, glucose, gcs, '
            'weight, peak_flow, pressure, vibration, bearing_temp, winding_temp, equipment_temp, h2s, co, o2, lel, '
            'voltage, current, insulation, bp'})
v("form value not a number", "readings_from_form", {"fields": [{"quantity": "spo2", "value": "eighty", "unit": "%"}]},
  {"error": 'spo2: "eighty" is not a number'})
v("form boolean is not a number", "readings_from_form", {"fields": [{"quantity": "spo2", "value": True}]},
  {"error": 'spo2: "true" is not a number'})
v("form blood pressure malformed", "readings_from_form", {"fields": [{"quantity": "bp", "value": "120"}]},
  {"error": 'bp: "120" is not a blood pressure such as 120/80'})
v("form unit needed", "readings_from_form", {"fields": [{"quantity": "pressure", "value": 435}]},
  {"error": "pressure: a unit is needed: use one of kPa, bar, MPa, psi"})

# ---- convert ----
for name, args, out in [
    ("mmol/L to mg/dL", {"quantity": "glucose", "value": 2.5, "unit": "mmol/L", "to": "mg/dL"}, 45.04),
    ("mg/dL to mmol/L", {"quantity": "glucose", "value": 54, "unit": "mg/dL", "to": "mmol/L"}, 2.9973),
    ("F to C", {"quantity": "temp", "value": 104, "unit": "°F", "to": "°C"}, 40),
    ("C to F", {"quantity": "temp", "value": 40, "unit": "°C", "to": "°F"}, 104),
    ("C to F below zero", {"quantity": "equipment_temp", "value": -40, "unit": "°C", "to": "°F"}, -40),
    ("psi to bar", {"quantity": "pressure", "value": 435, "unit": "psi", "to": "bar"}, 29.9922),
    ("bar to psi", {"quantity": "pressure", "value": 30, "unit": "bar", "to": "psi"}, 435.1132),
    ("MPa to kPa", {"quantity": "pressure", "value": 1, "unit": "MPa", "to": "kPa"}, 1000),
    ("in/s to mm/s", {"quantity": "vibration", "value": 0.28, "unit": "in/s", "to": "mm/s"}, 7.112),
    ("lb to kg", {"quantity": "weight", "value": 154, "unit": "lb", "to": "kg"}, 69.8532),
]:
    v(f"convert {name}", "convert", args, out)
v("convert unknown unit", "convert", {"quantity": "glucose", "value": 5, "unit": "mg/L", "to": "mg/dL"},
  {"error": 'unknown unit "mg/L" for glucose: use one of mg/dL, mmol/L'})

# ---- detect_asset ----
v("named asset", "detect_asset", {"text": "mud pump P-3 pressure readings drifting high"},
  {"id": "P-3", "class": "pump", "label": "mud pump P-3"})
v("named asset without hyphen", "detect_asset", {"text": "p3 seal leaking"},
  {"id": "P-3", "class": "pump", "label": "mud pump P-3"})
v("asset class", "detect_asset", {"text": "the chiller keeps tripping"}, {"id": None, "class": "hvac", "label": "HVAC"})
v("a longer tag is another asset", "detect_asset", {"text": "P-30 running rough"}, None)
v("first class keyword wins", "detect_asset", {"text": "compressor then pump"},
  {"id": None, "class": "compressor", "label": "compressor"})
v("alias of a named generator", "detect_asset", {"text": "generator 1 bearing hot"},
  {"id": "G-1", "class": "generator", "label": "main generator G-1 (6.6 kV)"})


# ---- evaluate ----
def ev(name: str, kind: str, text: str, status: str, rules: list[str], **extra: Any) -> None:
    v(name, "evaluate", {"kind": kind, "text": text, **extra}, {"status": status, "rules": rules})


ev("SpO2 84 escalates", "triage", "SpO2 84%", "escalate", ["spo2_low"])
ev("SpO2 91 is at the limit", "triage", "SpO2 91%", "escalate", ["spo2_low"])
ev("SpO2 92 in range", "triage", "SpO2 92%", "in_range", [])
ev("HR 38", "triage", "HR 38", "escalate", ["hr_low"])
ev("HR 131", "triage", "HR 131", "escalate", ["hr_high"])
ev("HR 130 in range", "triage", "HR 130", "in_range", [])
ev("RR 8", "triage", "RR 8", "escalate", ["rr_low"])
ev("RR 24 in range", "triage", "RR 24", "in_range", [])
ev("RR 25", "triage", "RR 25", "escalate", ["rr_high"])
ev("BP 85/50", "triage", "BP 85/50", "escalate", ["sbp_low"])
ev("BP 185/100", "triage", "BP 185/100", "escalate", ["sbp_high"])
ev("BP 150/125", "triage", "BP 150/125", "escalate", ["dbp_high"])
ev("temp 34.5 C", "triage", "temp 34.5 C", "escalate", ["temp_low"])
ev("temp 104 F compared in F", "triage", "temp 104 F", "escalate", ["temp_high"])
ev("temp 39.5 in range", "triage", "temp 39.5", "in_range", [])
ev("glucose 45 mg/dL", "screening", "glucose 45 mg/dL", "escalate", ["glucose_low"])
ev("glucose 2.5 mmol/L compared in mmol/L", "screening", "glucose 2.5 mmol/L", "escalate", ["glucose_low"])
ev("glucose 3.0 mmol/L is not below 3.0", "screening", "glucose 3.0 mmol/L", "in_range", [])
ev("glucose 16.8 mmol/L", "screening", "fasting glucose 16.8 mmol/L", "escalate", ["glucose_high"])
ev("glucose 350 mg/dL", "screening", "blood sugar 350 mg/dL", "escalate", ["glucose_high"])
ev("GCS 10", "triage", "GCS 10", "escalate", ["gcs_low"])
ev("GCS 14 in range", "triage", "GCS 14", "in_range", [])
ev("chest pain", "triage", "crushing chest pain for 20 minutes", "escalate", ["chest_pain"])
ev("no chest pain", "triage", "no chest pain, mild cough", "no_readings", [])
ev("denies chest pain", "triage", "denies chest pain", "no_readings", [])
ev("negation does not cross 'and'", "triage", "no fever and chest pain", "escalate", ["chest_pain"])
ev("negation after the phrase", "triage", "chest pain denied", "no_readings", [])
ev("negation does not cross a clause", "triage", "denies chest pain but is not breathing", "escalate",
   ["not_breathing"])
ev("seizure", "triage", "had a seizure at 0300", "escalate", ["seizure"])
ev("no seizures", "triage", "no seizures reported", "no_readings", [])
ev("AVPU voice", "triage", "AVPU: V", "escalate", ["consciousness"])
ev("stroke signs", "triage", "sudden facial droop and slurred speech", "escalate", ["stroke_signs"])
ev("implausible SpO2", "triage", "SpO2 140%", "implausible", [])
ev("escalate wins over implausible", "triage", "SpO2 140%, HR 38", "escalate", ["hr_low"])
ev("implausible in another unit", "triage", "temp 120 F", "implausible", [])
ev("nothing to check", "triage", "patient comfortable, talking", "no_readings", [])
ev("empty text", "screening", "", "no_readings", [])
ev("P-3 discharge pressure", "fault",
   "mud pump P-3 pressure readings drifting high since 0200, discharge 5,200 PSI, vibration also slightly elevated",
   "escalate", ["p3_discharge_pressure"])
ev("pump vibration at zone D", "fault", "pump vibration 7.1 mm/s", "escalate", ["pump_vibration"])
ev("pump vibration below zone D", "fault", "pump vibration 7.0 mm/s", "in_range", [])
ev("named asset limit replaces the class's", "fault", "P-3 vibration 5.2 mm/s", "escalate", ["p3_vibration"])
ev("vibration in in/s against the in/s limit", "fault", "compressor vibration 0.3 in/s", "escalate",
   ["compressor_vibration"])
ev("generator voltage out of band", "fault", "G-1 voltage 7.4 kV", "escalate", ["g1_voltage"])
ev("generator voltage in band", "fault", "G-1 voltage 6.6 kV", "in_range", [])
ev("insulation resistance", "fault", "MCC feeder cable meggered 0.4 MΩ", "escalate", ["electrical_insulation_low"])
ev("gas readings", "fault", "H2S 15 ppm, LEL 12%, O2 19%, CO 40 ppm", "escalate",
   ["h2s_high", "lel_high", "o2_low", "co_high"])
ev("fire pump is not a fire", "fault", "fire pump P-9 running rough", "no_readings", [])
ev("smoke", "fault", "smoke from the MCC", "escalate", ["fire_smoke"])
ev("no smoke", "fault", "no smoke, no sparks, breaker tripped", "no_readings", [])
ev("fire is an equipment phrase only", "triage", "burns from a fire on the deck", "no_readings", [])
ev("a person in a fault report", "fault", "man down near compressor C-1, not breathing", "escalate",
   ["person_down"])
ev("stroke rate is a pump's", "fault", "P-3 stroke rate dropped, leaking fitting, bearing seizing", "no_readings", [])
ev("an unresponsive HMI is no person", "fault", "HMI unresponsive, explosion-proof motor, burner flame failure",
   "no_readings", [])
ev("stroke in a triage", "triage", "possible stroke, face drooping", "escalate", ["stroke_signs"])
ev("asset from the form", "fault", "discharge 5200 psi", "escalate", ["p3_discharge_pressure"], asset="P-3")
ev("asset class from the form", "fault", "vibration 7.5 mm/s", "escalate", ["pump_vibration"], asset="pump")
ev("no asset: class limits do not apply", "fault", "vibration 7.5 mm/s", "in_range", [])
ev("form readings with text", "triage", "pt drowsy", "escalate", ["spo2_low", "consciousness"],
   fields=[{"quantity": "spo2", "value": 88, "unit": "%"}])
v("given readings are normalised", "evaluate",
  {"kind": "triage", "text": "", "readings": [
      {"quantity": "temp", "value": 104, "unit": "°F", "canonical_value": 0, "canonical_unit": "?", "text": "T 104F",
       "start": 0, "end": 6, "source": "text"}]},
  {"status": "escalate", "rules": ["temp_high"]})
v("a reading of an unknown quantity", "evaluate",
  {"kind": "triage", "text": "", "readings": [{"quantity": "mood", "value": 1, "unit": "%"}]},
  {"error": 'unknown quantity "mood": use one of spo2, heart_rate, resp_rate, sbp, dbp, temp, glucose, gcs, weight, '
            'peak_flow, pressure, vibration, bearing_temp, winding_temp, equipment_temp, h2s, co, o2, lel, voltage, '
            'current, insulation'})
v("unknown kind", "evaluate", {"kind": "chat", "text": "HR 38"},
  {"error": 'unknown task kind "chat": use one of fault, triage, screening'})

# ---- unsupported_numbers ----
for name, args, out in [
    ("same number", {"answer": "SpO2 84% is low", "input": "SpO2 84%"}, []),
    ("84.0 is 84", {"answer": "SpO2 84.0%", "input": "sats 84"}, []),
    ("invented number", {"answer": "give 2 L/min oxygen", "input": "SpO2 84%"}, ["2"]),
    ("converted value not known", {"answer": "pressure about 30 bar", "input": "435 psi"}, ["30"]),
    ("converted value known", {"answer": "pressure about 30 bar", "input": "435 psi", "known": [29.9922]}, []),
    ("a different reading", {"answer": "P-3 at 450 psi", "input": "P-3 at 435 psi"}, ["450"]),
    ("thousands separators", {"answer": "1,200 psi", "input": "1200 psi"}, []),
    ("a rounded input value", {"answer": "about 84", "input": "84.4"}, []),
    ("more decimals than the input", {"answer": "84.3", "input": "84"}, ["84.3"]),
    ("each number once", {"answer": "7 then 7 then 9", "input": ""}, ["7", "9"]),
    ("digits inside names are not numbers", {"answer": "H2S and SpO2", "input": ""}, []),
]:
    v(f"unsupported: {name}", "unsupported_numbers", args, out)


# ---- review ----
def rv(name: str, kind: str, text: str, completion: dict[str, Any], check: dict[str, Any], **extra: Any) -> None:
    v(name, "review", {"kind": kind, "text": text, "completion": completion, **extra}, check)


MINOR = answer(probable=["hypoxia"], priority="minor", interventions=["high-flow oxygen"])
rv("red flag with a minor answer still escalates", "triage", "SpO2 84%, HR 38", done(MINOR),
   {"status": "escalate", "escalate": True, "valid": True, "rules": ["spo2_low", "hr_low"],
    "model_suggests_escalation": False})
rv("model asks for escalation", "triage", "fell from ladder, leg deformed",
   done(answer(probable=["femur fracture"], priority="immediate", interventions=["splint the injury"])),
   {"status": "escalate", "escalate": True, "valid": True, "rules": [], "model_suggests_escalation": True})
rv("valid, nothing out of range", "triage", "HR 80, RR 16, sprained ankle",
   done(answer(probable=["ankle sprain"], priority="minor", interventions=["splint the injury"])),
   {"status": "in_range", "escalate": False, "valid": True, "confidence": "high"})
rv("not JSON", "triage", "sprained ankle", done("Patient needs rest and ice."),
   {"status": "invalid_answer", "escalate": False, "valid": False, "problems": ["the answer is not valid JSON"]})
rv("not JSON with a red flag", "triage", "SpO2 84%", done("Give oxygen."),
   {"status": "escalate", "escalate": True, "valid": False, "rules": ["spo2_low"]})
rv("cut with a red flag", "triage", "HR 38", done('{"probable": ["brady', finish="length"),
   {"status": "escalate", "escalate": True, "valid": False, "cut": True})
rv("cut without a red flag", "triage", "HR 80", done('{"probable": ["anx', finish="length"),
   {"status": "invalid_answer", "valid": False, "cut": True,
    "problems": ['the answer was cut off (finish_reason "length")', "the answer is not valid JSON"]})
rv("finish reason missing is cut", "triage", "HR 80", done(MINOR, finish=None), {"valid": False, "cut": True})
rv("schema-invalid: enums and an extra property", "triage", "HR 80",
   done('{"probable": ["x"], "priority": "urgentish", "interventions": ["magic potion"], "diagnosis": "flu"}'),
   {"status": "invalid_answer", "valid": False,
    "problems": ['answer: unexpected "diagnosis"', "answer.priority: not one of the allowed values",
                 "answer.interventions[0]: not one of the allowed values"]})
rv("schema-invalid: sizes and a missing property", "triage", "",
   done(answer(probable=[], interventions=["CPR", "CPR", "CPR", "CPR", "CPR"])),
   {"status": "invalid_answer", "valid": False,
    "problems": ['answer: missing "priority"', "answer.probable: 0 items, fewer than 1",
                 "answer.interventions: 5 items, more than 3"]})
rv("schema-invalid: long string", "fault", "",
   done(answer(asset="x" * 31, probable_causes=["wear"], recommended_action="inspect", escalate_if=["leak"],
               severity="low")),
   {"valid": False, "problems": ["answer.asset: 31 characters, more than 30"]})
rv("array instead of object", "triage", "", done("[]"), {"problems": ["answer: expected object, got array"]})
rv("empty answer", "triage", "", done(""), {"problems": ["the answer is empty"]})
rv("NaN is not JSON", "triage", "", done("NaN"), {"problems": ["the answer is not valid JSON"]})
rv("nesting too deep", "triage", "", done("[" * 70 + "]" * 70), {"problems": ["the answer is nested too deeply"]})
FAULT_OK = dict(asset="mud pump P-3", probable_causes=["worn valve seats", "blocked discharge line"],
                recommended_action="reduce stroke rate and inspect the discharge line",
                escalate_if=["pressure keeps rising"], severity="high")
rv("fault high is not an escalation", "fault", "mud pump P-3 discharge 380 psi, vibration 3.1 mm/s",
   done(answer(**FAULT_OK)), {"status": "in_range", "escalate": False, "valid": True,
                              "model_suggests_escalation": False})
rv("fault critical is an escalation", "fault", "mud pump P-3 discharge 380 psi",
   done(answer(**{**FAULT_OK, "severity": "critical"})),
   {"status": "escalate", "escalate": True, "model_suggests_escalation": True, "rules": []})
rv("fault answer with invented numbers", "fault", "P-3 discharge 380 psi",
   done(answer(**{**FAULT_OK, "escalate_if": ["pressure above 450 psi", "vibration above 7.1 mm/s"]})),
   {"unsupported_numbers": ["450", "7.1"], "valid": True})
rv("fault answer with converted numbers", "fault", "P-3 discharge 360 bar",
   done(answer(**{**FAULT_OK, "escalate_if": ["pressure above 5221 psi"]})),
   {"unsupported_numbers": [], "rules": ["p3_discharge_pressure"]})
SCREEN_OK = answer(reading_summary="Fasting glucose 110 mg/dL.",
                   context="A fasting reading between 100 and 125 mg/dL is above the usual range.",
                   next_step="see a clinician within a week")
rv("screening valid", "screening", "fasting glucose 110 mg/dL", done(SCREEN_OK),
   {"status": "in_range", "valid": True, "escalate": False})
rv("screening names a diagnosis", "screening", "fasting glucose 130 mg/dL",
   done(answer(reading_summary="Fasting glucose 130 mg/dL.", context="You have diabetes.",
               next_step="see a clinician within a week")),
   {"status": "invalid_answer", "valid": False, "problems": ['screening answers must not diagnose: "diabetes"']})
rv("screening says it is not a diagnosis", "screening", "fasting glucose 110 mg/dL",
   done(answer(reading_summary="Fasting glucose 110 mg/dL.", context="This is not a diagnosis; repeat it fasting.",
               next_step="repeat the reading fasting")),
   {"status": "in_range", "valid": True})
rv("screening asks for urgent care", "screening", "glucose 250 mg/dL, thirsty",
   done(answer(reading_summary="Glucose 250 mg/dL.", context="This is well above the usual range.",
               next_step="seek urgent care")),
   {"status": "escalate", "model_suggests_escalation": True, "rules": []})
rv("screening from the form", "screening", "fasting",
   done(answer(reading_summary="Glucose 2.5 mmol/L.", context="This is low.", next_step="seek urgent care")),
   {"status": "escalate", "rules": ["glucose_low"], "model_suggests_escalation": True},
   fields=[{"quantity": "glucose", "value": 2.5, "unit": "mmol/L"}])
rv("low confidence", "triage", "HR 80", done(MINOR, p=0.3), {"confidence": "low", "valid": True})
rv("at the threshold is high", "triage", "HR 80", done(MINOR, p=0.6), {"confidence": "high"})
rv("no probability, no confidence", "triage", "HR 80", done(MINOR, p=None), {"confidence": None})
rv("implausible reading with a valid answer", "triage", "SpO2 140%", done(MINOR),
   {"status": "implausible", "valid": True, "escalate": False})
rv("asset from the form in a review", "fault", "discharge 5200 psi", done(answer(**FAULT_OK)),
   {"status": "escalate", "rules": ["p3_discharge_pressure"]}, asset="P-3")

# ---- tasks, requests ----
for kind in ("fault", "triage", "screening"):
    v(f"{kind} schema", "task_schema", {"kind": kind}, None)
v("triage request with form readings", "task_request",
  {"kind": "triage", "text": "  collapsed at the pump room  ", "fields": [
      {"quantity": "spo2", "value": 84, "unit": "%"}, {"quantity": "bp", "value": "85/50"},
      {"quantity": "gcs", "value": 10}]}, None)
v("fault request with an asset", "task_request",
  {"kind": "fault", "text": "pressure drifting high since 0200", "asset": "P-3"}, None)
v("screening request with nothing", "task_request", {"kind": "screening", "text": " "}, None)
v("unknown task", "task_schema", {"kind": "chat"},
  {"error": 'unknown task kind "chat": use one of fault, triage, screening'})

# ---- loading ----
v("rules load", "load_rules", {"patch": [{"path": ["rules_version"], "value": "site-7"}]},
  {"version": 1, "rules_version": "site-7", "sha256": None})
v("rules bytes are hashed", "load_rules",
  {"raw": '{"format": "fieldllm-rules", "version": 1}'},
  {"error": 'rules: "rules_version" must be a non-empty string'})


def bad(name: str, patch: list[dict[str, Any]], message: str) -> None:
    v(f"rules error: {name}", "load_rules", {"patch": patch}, {"error": message})


bad("format", [{"path": ["format"], "value": "other"}],
    'rules: unsupported format "other" version 1: this reader supports format "fieldllm-rules" version 1')
bad("version", [{"path": ["version"], "value": 2}],
    'rules: unsupported format "fieldllm-rules" version 2: this reader supports format "fieldllm-rules" version 1')
bad("no version", [{"path": ["version"], "delete": True}],
    'rules: unsupported format "fieldllm-rules" version null: this reader supports format "fieldllm-rules" version 1')
bad("unknown unit", [{"path": ["quantities", "spo2", "units"], "value": {"%": 1, "permille": 0.1}}],
    'rules: quantities.spo2.units: unknown unit "permille" (not in "units")')
bad("canonical unit", [{"path": ["quantities", "spo2", "canonical_unit"], "value": "bpm"}],
    'rules: quantities.spo2: canonical_unit "bpm" must be one of its units, with factor 1 and offset 0')
bad("plausible range", [{"path": ["quantities", "spo2", "plausible"], "value": [100, 50]}],
    "rules: quantities.spo2.plausible must be [low, high] with low < high")
bad("limit quantity", [{"path": ["limits", 0, "quantity"], "value": "mood"}],
    'rules: limits[0] (spo2_low): unknown quantity "mood"')
bad("limit unit", [{"path": ["limits", 0, "limits"], "value": {"bpm": 91}}],
    'rules: limits[0] (spo2_low): unit "bpm" is not one spo2 takes (%)')
bad("limit op", [{"path": ["limits", 0, "op"], "value": "=="}],
    "rules: limits[0] (spo2_low): op must be one of <, <=, >, >=, outside")
bad("duplicate id", [{"path": ["limits", 1, "id"], "value": "spo2_low"}], 'rules: duplicate id "spo2_low"')
bad("placeholder", [{"path": ["limits", 0, "message"], "value": "{label} {reading}"}],
    'rules: limits[0] (spo2_low): unknown placeholder "{reading}"')
bad("threshold", [{"path": ["confidence_threshold"], "value": 1.5}],
    'rules: "confidence_threshold" must be a number from 0 to 1')
bad("asset class", [{"path": ["assets", "P-3", "class"], "value": "rig"}],
    'rules: assets.P-3: unknown asset class "rig"')
bad("kinds", [{"path": ["phrases", 0, "kinds"], "value": ["chat"]}],
    'rules: phrases[0] (chest_pain): unknown kind "chat" (kinds are fault, triage, screening)')
bad("allow-list", [{"path": ["allow_lists", "triage_interventions"], "value": []}],
    "rules: allow_lists.triage_interventions must be a non-empty list of non-empty strings")
bad("replaces", [{"path": ["limits", 0, "replaces"], "value": ["nothing"]}],
    'rules: limits[0] (spo2_low): replaces unknown limit "nothing"')
v("rules error: not JSON", "load_rules", {"raw": "{format: fieldllm-rules}"}, {"error": "rules: not valid JSON"})
v("rules error: not an object", "load_rules", {"raw": "[1, 2]"}, {"error": "rules: not a JSON object"})
v("tasks load", "load_tasks", {"patch": []}, {"fault": "severity", "triage": "priority", "screening": "next_step"})
v("tasks error: version", "load_tasks", {"patch": [{"path": ["version"], "value": 7}]},
  {"error": 'tasks: unsupported format "fieldllm-tasks" version 7: this reader supports format "fieldllm-tasks" '
            'version 1'})
v("tasks error: decisive", "load_tasks", {"patch": [{"path": ["tasks", "triage", "decisive"], "value": "mood"}]},
  {"error": 'tasks: tasks.triage.decisive "mood" must be a required property of the schema'})
v("tasks error: max_tokens", "load_tasks", {"patch": [{"path": ["tasks", "fault", "max_tokens"], "value": 0}]},
  {"error": "tasks: tasks.fault.max_tokens must be a whole number from 1 to 4096"})
v("tasks error: missing task", "load_tasks", {"patch": [{"path": ["tasks", "screening"], "delete": True}]},
  {"error": 'tasks: task "screening" is missing'})

# ---- number printing ----
for x, out in [(84.0, "84"), (40.6, "40.6"), (0.1 + 0.2, "0.3"), (2.99735, "2.9974"), (-0.00001, "0"),
               (1e21, "1e+21"), (123456.78901, "123456.789")]:
    v(f"fmt_num {out}", "fmt_num", {"x": x}, out)


def main() -> int:
    rules, tasks = default_inputs()
    failed = 0
    names = set()
    for vec in VECTORS:
        if vec["name"] in names:
            print(f"duplicate vector name: {vec['name']}", file=sys.stderr)
            failed += 1
        names.add(vec["name"])
        result = run(vec, rules, tasks)
        if vec["check"] is not None and not same(project(vec["fn"], result, vec["check"]), vec["check"]):
            print(f"check failed: {vec['name']}\n  check: {dumps(vec['check'])}\n  got:   "
                  f"{dumps(project(vec['fn'], result, vec['check']))}", file=sys.stderr)
            failed += 1
        vec["expect"] = result
    if failed:
        print(f"{failed} vectors failed their check; {OUT} not written", file=sys.stderr)
        return 1
    doc = {"format": "fieldllm-field-vectors", "version": 1,
           "notes": ["Written by tests/field/make_vectors.py (inputs and checks live there); run by "
                     "tests/field/test_vectors.py (Python) and tests/js/field.test.js (JS).",
                     "expect is the exact output; check is what the output must say, written by hand."],
           "vectors": VECTORS}
    OUT.write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n")
    print(f"wrote {len(VECTORS)} vectors to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
