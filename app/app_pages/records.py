"""Records: find, create, change and archive accounts, contacts, deals and tasks, with their audit trail.

Reads come straight from the operational store, so a save shows at once. The version a form was opened
at is kept in the session: if someone else saves first, the store refuses the save (stale edit) and the
page says so instead of overwriting their change.
"""

from datetime import date, datetime

import streamlit as st

from app import edits, queries
from app.ui import page_viewer, plain, table

viewer = page_viewer(needs_snapshot=False)
store = queries.operational_store()
contract = store.contract  # with the installation's allowed values (crm.yaml)

FIELDS = {
    "accounts": ["account_name", "account_type", "industry", "employees", "email", "phone", "city", "country",
                 "region", "owner_user_id"],
    "contacts": ["account_id", "first_name", "last_name", "email", "phone", "job_title", "is_primary"],
    "opportunities": ["opportunity_name", "account_id", "owner_user_id", "stage", "amount", "expected_close_date",
                      "lost_reason", "product_id"],
    "tasks": ["subject", "task_type", "status", "due_at", "owner_user_id", "account_id", "opportunity_id"],
}
CREATE_DEFAULTS = {"accounts": {"source_system": "crm", "account_type": "B2B", "country": "DE", "region": "North"},
                   "contacts": {"is_primary": False},
                   "opportunities": {"stage": contract.entity("opportunities").column("stage").allowed[0]},
                   "tasks": {"status": "open", "task_type": "call"}}

st.title("Records")
entity = st.segmented_control("Record type", list(edits.EDITABLE), default="accounts", key="records_entity",
                              format_func=lambda e: edits.EDITABLE[e] + "s") or "accounts"
label = edits.EDITABLE[entity]
st.caption(f"Scope: {plain(viewer.scope_label)}." + ("" if viewer.can_write else " Read-only for your role."))

search = st.text_input(f"Search {label.lower()}s", key=f"records_search_{entity}",
                       placeholder="id" if viewer.masked else "id or name")
include_archived = st.toggle("Include archived", key=f"records_archived_{entity}")
rows = queries.list_records(viewer, entity, search, include_archived)
st.caption(f"{rows.height} {label.lower()}(s) found" + (" (first 200)" if rows.height == 200 else ""))
table(rows, f"{entity}_records", height=260)

key_column, name_column, _ = queries.RECORD_LIST[entity]
choices = ["__new__"] if viewer.can_write else []
choices += rows[key_column].to_list() if rows.height else []
names = dict(zip(rows[key_column].to_list(), rows[name_column].to_list(), strict=True)) if rows.height else {}
picked = st.selectbox("Open", choices, key=f"records_pick_{entity}",
                      format_func=lambda k: f"➕ New {label.lower()}" if k == "__new__" else f"{names.get(k)} · {k}")
if picked is None:
    st.stop()


def _owner_options() -> list[str]:
    users = queries.users_in_scope(viewer)
    return users["user_id"].to_list() if not users.is_empty() else ([viewer.user_id] if viewer.user_id else [])


def _widget(field: str, value, key: str, errors: dict[str, str]):
    """One form field typed from the contract; its validation message (if any) right under it."""
    column = contract.entity(entity).column(field)
    caption = field.replace("_", " ").capitalize() + (" *" if column.required else "")
    if field == "owner_user_id":
        options = _owner_options()
        if value and value not in options:
            options = [value, *options]
        result = st.selectbox(caption, options, index=options.index(value) if value in options else 0, key=key,
                              disabled=not viewer.can_assign and picked != "__new__")
    elif column.allowed:
        options = ([""] if not column.required else []) + column.allowed
        result = st.selectbox(caption, options, index=options.index(value) if value in options else 0, key=key)
    elif column.type == "boolean":
        result = st.checkbox(caption, value=bool(value), key=key)
    elif column.type in ("integer", "decimal"):
        result = st.number_input(caption, value=float(value) if value not in (None, "") else None,
                                 step=1.0 if column.type == "integer" else 100.0, key=key)
        result = int(result) if result is not None and column.type == "integer" else result
    elif column.type == "date":
        default = date.fromisoformat(str(value)[:10]) if value else None
        result = st.date_input(caption, value=default, key=key)
        result = result.isoformat() if result else None
    elif column.type == "timestamp":
        result = st.text_input(caption + " (YYYY-MM-DDTHH:MM)", value=str(value or "")[:16], key=key)
        result = value if result == str(value or "")[:16] else (result.strip() or None)
    else:
        result = st.text_input(caption, value=str(value or ""), key=key)
    if field in errors:
        st.error(plain(errors[field]), icon="⚠️")
    return result


if picked == "__new__":
    record, version = dict(CREATE_DEFAULTS.get(entity, {})), None
    if viewer.user_id and entity != "contacts":
        record.setdefault("owner_user_id", viewer.user_id)
else:
    record = queries.get_record(viewer, entity, picked)
    if record is None:
        st.warning(f"{label} {plain(picked)} is not in your scope or no longer exists.")
        st.stop()
    version_key = f"version:{entity}:{picked}"
    if version_key not in st.session_state:  # the version this editor opened; kept until a save or reload
        st.session_state[version_key] = record["version"]
    version = st.session_state[version_key]
    st.subheader(f"{label} {plain(picked)}")
    st.text(f"{name_column}: {record.get(name_column)}")
    if record["version"] != version:
        st.warning(f"Someone saved this {label.lower()} after you opened it (you have version {version}, the store "
                   f"has {record['version']}). Reload to see their change before you edit.")
    if st.button("Reload", key=f"reload_{entity}_{picked}", icon=":material/refresh:"):
        st.session_state.pop(version_key, None)
        st.session_state.pop(f"errors:{entity}:{picked}", None)
        for field in FIELDS[entity]:
            st.session_state.pop(f"f_{entity}_{picked}_{field}", None)
        st.rerun()

errors_key = f"errors:{entity}:{picked}"
errors = st.session_state.get(errors_key, {})
if not viewer.can_write:
    st.json({k: (str(v) if v is not None else None) for k, v in record.items()})
else:
    with st.form(f"form_{entity}_{picked}"):
        values = {field: _widget(field, record.get(field), f"f_{entity}_{picked}_{field}", errors)
                  for field in FIELDS[entity]}
        for field in set(errors) - set(FIELDS[entity]):
            st.error(f"{plain(field)}: {plain(errors[field])}", icon="⚠️")
        submitted = st.form_submit_button("Create" if picked == "__new__" else "Save", type="primary")
    if submitted:
        try:
            if picked == "__new__":
                saved = edits.create_record(viewer, store, entity, {**record, **values})
                new_id = saved[key_column]
                st.session_state.pop(errors_key, None)
                st.session_state[f"flash:{entity}"] = f"{label} {plain(new_id)} created."
            else:
                saved = edits.update_record(viewer, store, entity, picked, values, version)
                st.session_state[f"version:{entity}:{picked}"] = saved["version"]
                st.session_state.pop(errors_key, None)
                st.session_state[f"flash:{entity}"] = f"Saved {label.lower()} {plain(picked)} (version {saved['version']})."
            queries.forget_scope()
            st.rerun()
        except edits.RecordValidationError as exc:
            st.session_state[errors_key] = exc.errors
            st.rerun()
        except edits.StaleEditError as exc:
            st.error(f"Not saved: {plain(exc)}", icon="🔒")
        except (edits.PermissionDenied, edits.RecordNotFoundError) as exc:
            st.error(f"Not saved: {plain(exc)}", icon="⛔")

    archivable = picked != "__new__" and "is_archived" in record and not record.get("is_archived")
    if archivable and st.button(f"Archive this {label.lower()}", key=f"archive_{entity}_{picked}",
                                icon=":material/archive:"):
            try:
                saved = edits.archive_record(viewer, store, entity, picked, version)
                st.session_state[f"version:{entity}:{picked}"] = saved["version"]
                st.session_state[f"flash:{entity}"] = f"{label} {plain(picked)} archived."
                st.rerun()
            except (edits.StaleEditError, edits.PermissionDenied) as exc:
                st.error(f"Not archived: {plain(exc)}", icon="🔒")

flash = st.session_state.pop(f"flash:{entity}", None)
if flash:
    st.success(flash, icon="✅")

if picked != "__new__":
    st.subheader("Audit trail")
    audit = queries.audit_for(viewer, entity, picked)
    if audit.is_empty():
        st.caption("No changes through the portal yet (loaded from the source system).")
    else:
        # st.table renders Markdown in its cells: values go through plain(), so a typed URL stays text
        st.table([{k: plain(v) for k, v in row.items()} for row in audit.to_dicts()])
    st.caption(f"Shown at {datetime.now():%H:%M:%S}; changes reach the analysis pages after the next pipeline run.")
