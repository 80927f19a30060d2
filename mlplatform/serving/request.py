"""The request and answer schema of `predict`, built from the spec: typed, range-checked rows, optional entity
ids (one per row), at most `MAX_ROWS` rows; unknown fields are refused.

Types are strict JSON types: a number field takes a JSON number (not `true`, not `"30"`), an integer field an
integral number, an entity id an integer in [0, 2**63 - 1] (what the stores and the prediction log hold)."""

from types import GenericAlias
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model, model_validator

from mlplatform.specs import Spec

MAX_ROWS = 1000
MAX_ENTITY_ID = 2**63 - 1


def _json_number(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("Input should be a JSON number")
    return value


# An integer feature: a JSON number that is integral (30 or 30.0), never a string or a boolean. A float feature is
# strict (`strict=True` accepts JSON integers and floats only) and checked in pydantic's core, without a Python call.
JsonInteger = Annotated[int, BeforeValidator(_json_number)]
EntityId = Annotated[int, Field(ge=0, le=MAX_ENTITY_ID, strict=True)]


class Prediction(BaseModel):
    """The answer of `predict`: which model answered, a request id, and per row the task's output (the fields of
    `prediction_model(spec)`)."""

    request_id: str
    model: str
    model_version: str

    def outputs(self) -> dict[str, Any]:
        """The task's fields of the answer (what the prediction log keeps besides the request)."""
        return self.model_dump(exclude={"request_id", "model", "model_version"})


def prediction_model(spec: Spec) -> type[Prediction]:
    """The answer of the spec's task. binary: `probabilities` (of the positive class) and `labels`; multiclass:
    `probabilities` (one object per row, class → probability, in the declared class order) and `labels`;
    regression: `values`."""
    title = f"{spec.name.title()}Prediction"
    if spec.task == "regression":
        return create_model(title, __base__=Prediction,
                            values=(list[float], Field(description="Predicted value per row")))
    label: Any = Literal[spec.classes]  # a Literal built at run time
    if spec.task == "binary":
        proba: Any = (list[float], Field(description=f"Probability of {spec.positive_class!r} per row"))
    else:
        proba = (list[dict[str, float]], Field(description="Per row, each class's probability"))
    return create_model(title, __base__=Prediction, probabilities=proba,
                        labels=(list[label], Field(description="Predicted class per row")))


def flat_outputs(answer: dict[str, Any]) -> list[float] | None:
    """An answer's numbers in one flat list (binary probabilities, multiclass probabilities row by row in class
    order, regression values), to compare two answers; None when it holds none."""
    if "values" in answer:
        return [float(v) for v in answer["values"]]
    probabilities = answer.get("probabilities")
    if probabilities is None:
        return None
    return [float(v) for p in probabilities for v in (p.values() if isinstance(p, dict) else [p])]


def row_model(spec: Spec) -> type[BaseModel]:
    """One request row: every contract feature, typed and range-checked; unknown fields are rejected."""
    fields: dict[str, Any] = {}
    for col in spec.numeric:
        number: Any = JsonInteger if col.integer else Annotated[float, Field(strict=True)]
        fields[col.name] = (number | None if col.nullable else number,
                            Field(ge=col.min, le=col.max, allow_inf_nan=False))
    for cat in spec.categorical:
        choice = Literal[cat.categories]  # type: ignore[name-defined]  # a Literal built at run time
        fields[cat.name] = (choice | None if cat.nullable else choice, ...)
    return create_model(f"{spec.name.title()}Row", __config__=ConfigDict(extra="forbid"), **fields)


def rows_field(spec: Spec, max_rows: int = MAX_ROWS) -> Any:
    """The `rows` parameter of `predict`: 1 to `max_rows` rows."""
    return GenericAlias(list, (row_model(spec),)), Field(min_length=1, max_length=max_rows)  # list[<row model>]


EntityIdList = list[EntityId] | None


def entity_ids_problem(rows: int, entity_ids: list[int] | None) -> str | None:
    """What is wrong with a request's optional `entity_ids` (one per row, in order, so that the labels that land
    later can be joined to the logged answers), or None."""
    if entity_ids is not None and len(entity_ids) != rows:
        return f"entity_ids: {len(entity_ids)} ids for {rows} rows; give one id per row, in order, or none"
    return None


def request_model(spec: Spec, max_rows: int = MAX_ROWS) -> type[BaseModel]:
    """The body of `predict` ({"rows": [...], "entity_ids": [...] optional}), the same validation BentoML applies
    to the API's parameters."""
    rows_type, field = rows_field(spec, max_rows)

    def one_id_per_row(request: BaseModel) -> BaseModel:
        problem = entity_ids_problem(len(request.rows), request.entity_ids)  # type: ignore[attr-defined]
        if problem:
            raise ValueError(problem)
        return request

    return create_model(f"{spec.name.title()}PredictRequest", __config__=ConfigDict(extra="forbid"),
                        # pydantic annotates __validators__ as plain callables, but documents passing the
                        # decorated validators, which are descriptor proxies
                        __validators__={"one_id_per_row": model_validator(  # type: ignore[dict-item]
                            mode="after")(one_id_per_row)},
                        rows=(rows_type, field), entity_ids=(EntityIdList, None))


def unchecked_request() -> type[BaseModel]:
    """A `predict` body parsed without the spec's checks: only for measuring what validation costs (local)."""

    class Unchecked(BaseModel):
        rows: list[dict[str, Any]]
        entity_ids: list[Any] | None = None

    return Unchecked
