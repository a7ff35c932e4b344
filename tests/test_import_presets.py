"""Every shipped preset round-trips a small file written in that product's documented export columns:
a dry run and a real import report the same exact counts, and the stored records carry the translated
values (stages, account types, lead statuses) and the right dates."""

from __future__ import annotations

import duckdb
import pytest

from pipelines.lib.home import CrmHome
from pipelines.lib.importer import import_file
from pipelines.lib.store import OperationalStore
from pipelines.presets import list_presets

SF_USER_1, SF_USER_2 = "0055g00000AAAAAAA1", "0055g00000AAAAAAA2"
SF_ACCOUNT_1, SF_ACCOUNT_2 = "0015g00000BBBBBBB1", "0015g00000BBBBBBB2"

SF_USERS = f"""Id,Username,Name,Email,IsActive,UserRoleId,ProfileId,CreatedDate,LastModifiedDate
{SF_USER_1},ann@acme.example,Ann Rep,ann@acme.example,true,,00e5g000001,2021-03-04T10:22:13.000Z,2026-01-10T08:00:00.000Z
{SF_USER_2},bob@acme.example,Bob Rep,bob@acme.example,true,,00e5g000001,2022-06-01T09:00:00.000Z,2026-01-10T08:00:00.000Z
0055g00000AAAAAAA3,integration@acme.example,Integration,,false,,00e5g000002,2020-01-01T00:00:00.000Z,2026-01-10T08:00:00.000Z
"""
SF_ACCOUNTS = f"""Id,Name,Type,IsPersonAccount,Industry,NumberOfEmployees,PersonEmail,Phone,BillingCity,BillingCountry,OwnerId,CreatedDate,LastModifiedDate,IsDeleted
{SF_ACCOUNT_1},Nordwind GmbH,Customer - Direct,false,Manufacturing,250,,+49 40 1234,Hamburg,Germany,{SF_USER_1},2024-03-01T09:00:00.000Z,2026-01-01T12:00:00.000Z,false
{SF_ACCOUNT_2},Jana Novakova,,true,,,jana@example.test,,Prague,Czech Republic,{SF_USER_2},2025-01-15T10:30:00.000Z,2026-01-02T08:15:00.000Z,false
0015g00000BBBBBBB3,No Country AG,Prospect,false,,,,,,,{SF_USER_1},2025-02-01T10:00:00.000Z,2026-01-02T08:15:00.000Z,false
0015g00000BBBBBBB4,Ghost Ltd,Prospect,false,,,,,London,United Kingdom,0055g00000ZZZZZZZZ,2025-02-01T10:00:00.000Z,2026-01-02T08:15:00.000Z,false
"""


def _write(folder, name: str, body: str):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(body, encoding="utf-8")
    return path


def _round_trip(home: CrmHome, entities: list[str], path, preset: str, expected: dict[str, tuple[int, int]]):
    """Dry run, then the import itself: both report `expected` (entity -> (loaded, quarantined))."""
    for dry_run in (True, False):
        report = import_file(home, entities, path, mapping=preset, dry_run=dry_run)
        got = {e.entity: (e.inserted, e.quarantined) for e in report.entities}
        assert all(e.accounted == e.rows_read for e in report.entities), [
            (e.entity, e.rows_read, e.accounted) for e in report.entities]
        assert got == expected, (dry_run, got, [(f.line, f.field, f.reason, f.value) for e in report.entities
                                                for f in e.faults])
    return report


def _faults(report, entity: str) -> list[tuple]:
    [e] = [e for e in report.entities if e.entity == entity]
    return sorted((f.line, f.field, f.reason) for f in e.faults)


@pytest.fixture
def home(tmp_path, monkeypatch) -> CrmHome:
    monkeypatch.delenv("CRM_OPERATIONAL_DB_URL", raising=False)
    h = CrmHome(tmp_path / "home").ensure()
    store = OperationalStore(h.operational_db_url)
    store.migrate()  # what `crm store migrate` does first
    store.dispose()
    return h


@pytest.fixture
def store(home):
    def get(entity: str, record_id: str):
        s = OperationalStore(home.operational_db_url)
        try:
            return s.get(entity, record_id)
        finally:
            s.dispose()
    return get


@pytest.fixture
def salesforce_home(home, tmp_path):
    """Users and accounts of a Salesforce org, imported with their presets."""
    files = tmp_path / "sf"
    import_file(home, ["users"], _write(files, "User.csv", SF_USERS), mapping="salesforce-user")
    import_file(home, ["accounts"], _write(files, "Account.csv", SF_ACCOUNTS), mapping="salesforce-account")
    return home


def test_every_preset_is_tested_here():
    tested = {"salesforce-user", "salesforce-account", "salesforce-contact", "salesforce-lead",
              "salesforce-opportunity", "salesforce-opportunity-history", "hubspot-companies",
              "hubspot-contacts", "hubspot-deals", "webshop-orders"}
    assert set(list_presets()) == tested


def test_salesforce_user(home, tmp_path, store):
    report = _round_trip(home, ["users"], _write(tmp_path, "User.csv", SF_USERS), "salesforce-user",
                         {"users": (2, 1)})
    assert _faults(report, "users") == [(4, "email", "missing_required")]
    ann = store("users", SF_USER_1)
    assert (ann["full_name"], ann["role"], ann["is_active"], ann["hired_at"]) == ("Ann Rep", "sales_rep", True,
                                                                                   "2021-03-04")
    assert ann["updated_at"] == "2026-01-10T08:00:00"


def test_salesforce_account(home, tmp_path, store):
    import_file(home, ["users"], _write(tmp_path, "User.csv", SF_USERS), mapping="salesforce-user")
    report = _round_trip(home, ["accounts"], _write(tmp_path, "Account.csv", SF_ACCOUNTS), "salesforce-account",
                         {"accounts": (2, 2)})
    assert _faults(report, "accounts") == [(4, "country", "missing_required"),
                                           (5, "owner_user_id", "unknown_reference")]
    company, person = store("accounts", SF_ACCOUNT_1), store("accounts", SF_ACCOUNT_2)
    assert (company["account_type"], company["employees"], company["region"], company["city"]) == (
        "B2B", 250, "Unassigned", "Hamburg")
    assert (person["account_type"], person["email"], person["created_at"]) == (
        "B2C", "jana@example.test", "2025-01-15T10:30:00")


def test_salesforce_contact(salesforce_home, tmp_path, store):
    body = f"""Id,AccountId,Salutation,FirstName,LastName,Email,Phone,Title,CreatedDate,LastModifiedDate,IsDeleted
0035g00000CCCCCCC1,{SF_ACCOUNT_1},Mr.,Max,Muster,max@nordwind.example,+49 40 99,Head of IT,2024-04-01T09:00:00.000Z,2026-01-03T09:00:00.000Z,false
0035g00000CCCCCCC2,{SF_ACCOUNT_2},Ms.,Jana,Novakova,jana@example.test,,,2025-01-15T10:30:00.000Z,2026-01-03T09:00:00.000Z,true
0035g00000CCCCCCC3,{SF_ACCOUNT_1},,,Nofirstname,nf@nordwind.example,,,2024-04-01T09:00:00.000Z,2026-01-03T09:00:00.000Z,false
"""
    report = _round_trip(salesforce_home, ["contacts"], _write(tmp_path, "Contact.csv", body), "salesforce-contact",
                         {"contacts": (2, 1)})
    assert _faults(report, "contacts") == [(4, "first_name", "missing_required")]
    max_, jana = store("contacts", "0035g00000CCCCCCC1"), store("contacts", "0035g00000CCCCCCC2")
    assert (max_["job_title"], max_["is_primary"], max_["is_archived"]) == ("Head of IT", False, False)
    assert jana["is_archived"] is True  # IsDeleted: in Salesforce's recycle bin


def test_salesforce_lead(salesforce_home, tmp_path, store):
    body = f"""Id,FirstName,LastName,Company,Email,Phone,LeadSource,OwnerId,Status,CreatedDate,ConvertedDate,ConvertedAccountId,LastModifiedDate
00Q5g00000DDDDDD01,Eva,Lead,Lead Co,eva@lead.example,,Web,{SF_USER_1},Open - Not Contacted,2025-10-01T09:00:00.000Z,,,2026-01-04T09:00:00.000Z
00Q5g00000DDDDDD02,Tom,Converted,Nordwind GmbH,tom@nordwind.example,,Trade Show,{SF_USER_1},Closed - Converted,2025-09-01T09:00:00.000Z,2025-11-02,{SF_ACCOUNT_1},2026-01-04T09:00:00.000Z
00Q5g00000DDDDDD03,Queue,Owned,X GmbH,q@x.example,,Web,00G5g000000QUEUE1,Working - Contacted,2025-10-01T09:00:00.000Z,,,2026-01-04T09:00:00.000Z
00Q5g00000DDDDDD04,No,Source,Y AG,n@y.example,,,{SF_USER_2},Working - Contacted,2025-10-01T09:00:00.000Z,,,2026-01-04T09:00:00.000Z
"""
    report = _round_trip(salesforce_home, ["leads"], _write(tmp_path, "Lead.csv", body), "salesforce-lead",
                         {"leads": (3, 1)})
    assert _faults(report, "leads") == [(4, "owner_user_id", "unknown_reference")]
    eva, tom = store("leads", "00Q5g00000DDDDDD01"), store("leads", "00Q5g00000DDDDDD02")
    assert (eva["status"], eva["lead_source"]) == ("new", "web")
    assert (tom["status"], tom["lead_source"], tom["converted_account_id"]) == ("converted", "event", SF_ACCOUNT_1)
    assert tom["converted_at"] == "2025-11-02T00:00:00"
    assert store("leads", "00Q5g00000DDDDDD04")["lead_source"] == "other"


SF_STAGES = [("Prospecting", "prospecting"), ("Qualification", "qualification"),
             ("Needs Analysis", "qualification"), ("Value Proposition", "proposal"),
             ("Id. Decision Makers", "proposal"), ("Perception Analysis", "proposal"),
             ("Proposal/Price Quote", "proposal"), ("Negotiation/Review", "negotiation"),
             ("Closed Won", "closed_won"), ("Closed Lost", "closed_lost")]


def _sf_opportunities() -> str:
    rows = ["Id,AccountId,Name,StageName,Amount,Probability,CloseDate,CreatedDate,LastModifiedDate,OwnerId,"
            "LeadSource,IsWon,IsClosed,ForecastCategoryName,IsDeleted"]
    for i, (stage, _) in enumerate(SF_STAGES, start=1):
        won = "true" if stage == "Closed Won" else "false"
        closed = "true" if stage.startswith("Closed") else "false"
        rows.append(f"0065g00000EEEEEE{i:02d},{SF_ACCOUNT_1 if i % 2 else SF_ACCOUNT_2},Deal {i},{stage},"
                    f"{i * 1000}.50,{10 * i},2026-0{1 + i % 9}-28,2025-0{1 + i % 9}-03T10:00:00.000Z,"
                    f"2026-01-0{1 + i % 9}T10:00:00.000Z,{SF_USER_1},Partner Referral,{won},{closed},Pipeline,false")
    rows.append(f"0065g00000EEEEEE11,{SF_ACCOUNT_1},Odd stage,Stalled,100,10,2026-03-01,2025-03-03T10:00:00.000Z,"
                f"2026-01-05T10:00:00.000Z,{SF_USER_1},Web,false,false,Pipeline,false")
    rows.append(f"0065g00000EEEEEE12,{SF_ACCOUNT_1},No amount,Prospecting,,10,2026-03-01,2025-03-03T10:00:00.000Z,"
                f"2026-01-05T10:00:00.000Z,{SF_USER_1},Web,false,false,Pipeline,false")
    return "\n".join(rows) + "\n"


def test_salesforce_opportunity(salesforce_home, tmp_path, store):
    report = _round_trip(salesforce_home, ["opportunities"], _write(tmp_path, "Opportunity.csv", _sf_opportunities()),
                         "salesforce-opportunity", {"opportunities": (10, 2)})
    assert _faults(report, "opportunities") == [(12, "stage", "unmapped_value"), (13, "amount", "missing_required")]
    for i, (_, stage) in enumerate(SF_STAGES, start=1):
        assert store("opportunities", f"0065g00000EEEEEE{i:02d}")["stage"] == stage
    won = store("opportunities", "0065g00000EEEEEE09")
    assert (won["amount"], won["lead_source"], won["expected_close_date"]) == (9000.5, "partner", "2026-01-28")
    assert won["created_at"] == "2025-01-03T10:00:00"


def test_salesforce_opportunity_history(salesforce_home, tmp_path, store):
    import_file(salesforce_home, ["opportunities"], _write(tmp_path, "Opportunity.csv", _sf_opportunities()),
                mapping="salesforce-opportunity")
    deal = "0065g00000EEEEEE09"
    body = f"""Id,OpportunityId,StageName,Amount,CloseDate,Probability,ExpectedRevenue,ForecastCategory,CreatedById,CreatedDate,IsDeleted
0085g00000FFFFFF01,{deal},Prospecting,9000.5,2026-01-28,10,900.05,Pipeline,{SF_USER_1},2025-01-03T10:00:00.000Z,false
0085g00000FFFFFF02,{deal},Needs Analysis,9000.5,2026-01-28,20,1800.1,Pipeline,{SF_USER_1},2025-02-03T10:00:00.000Z,false
0085g00000FFFFFF03,{deal},Closed Won,9000.5,2026-01-28,100,9000.5,Closed,{SF_USER_2},2025-12-20T16:00:00.000Z,false
0085g00000FFFFFF04,0065g00000EEEEEE99,Prospecting,1,2026-01-28,10,0.1,Pipeline,{SF_USER_1},2025-01-03T10:00:00.000Z,false
"""
    report = _round_trip(salesforce_home, ["opportunity_stage_history"], _write(tmp_path, "OpportunityHistory.csv", body),
                         "salesforce-opportunity-history", {"opportunity_stage_history": (3, 1)})
    assert _faults(report, "opportunity_stage_history") == [(5, "opportunity_id", "unknown_reference")]
    event = store("opportunity_stage_history", "0085g00000FFFFFF02")
    assert (event["to_stage"], event["changed_at"], event["changed_by_user_id"]) == (
        "qualification", "2025-02-03T10:00:00", SF_USER_1)


# --- HubSpot ----------------------------------------------------------------------------------------------
HS_USERS = """user_id,full_name,email,role,team_id,hired_at,is_active,updated_at
Ann Rep,Ann Rep,ann@acme.example,sales_rep,,2021-01-01,true,2026-01-01T00:00:00
Bob Rep,Bob Rep,bob@acme.example,sales_rep,,2021-01-01,true,2026-01-01T00:00:00
"""
HS_COMPANIES = """Record ID,Company name,Company Domain Name,Industry,Number of Employees,Phone Number,City,Country/Region,Company owner,Create Date,Last Modified Date,Lifecycle Stage
5001,Nordwind GmbH,nordwind.example,MACHINERY,250,+49 40 1234,Hamburg,Germany,Ann Rep,2024-03-01 09:00,2026-01-01 12:00,Customer
5002,Beta SARL,beta.example,RETAIL,12,,Lyon,France,Bob Rep,2025-01-15 10:30,2026-01-02 08:15,Lead
5003,,nameless.example,,,,,France,Bob Rep,2025-01-15 10:30,2026-01-02 08:15,Lead
"""


@pytest.fixture
def hubspot_home(home, tmp_path):
    files = tmp_path / "hs"
    import_file(home, ["users"], _write(files, "owners.csv", HS_USERS))
    import_file(home, ["accounts"], _write(files, "companies.csv", HS_COMPANIES), mapping="hubspot-companies")
    return home


def test_hubspot_companies(home, tmp_path, store):
    import_file(home, ["users"], _write(tmp_path, "owners.csv", HS_USERS))
    report = _round_trip(home, ["accounts"], _write(tmp_path, "companies.csv", HS_COMPANIES), "hubspot-companies",
                         {"accounts": (2, 1)})
    assert _faults(report, "accounts") == [(4, "account_name", "missing_required")]
    nordwind = store("accounts", "5001")
    assert (nordwind["account_name"], nordwind["account_type"], nordwind["owner_user_id"], nordwind["employees"]) == (
        "Nordwind GmbH", "B2B", "Ann Rep", 250)
    assert (nordwind["created_at"], nordwind["updated_at"]) == ("2024-03-01T09:00:00", "2026-01-01T12:00:00")


def test_hubspot_contacts(hubspot_home, tmp_path, store):
    body = """Record ID,First Name,Last Name,Email,Phone Number,Job Title,Contact owner,Primary Associated Company ID,Create Date,Last Modified Date
7001,Max,Muster,max@nordwind.example,+49 40 99,Head of IT,Ann Rep,5001,2024-04-01 09:00,2026-01-03 09:00
7002,Claire,Dubois,claire@beta.example,,Buyer,Bob Rep,5002,2025-02-01 09:00,2026-01-03 09:00
7003,Lost,Contact,lost@nowhere.example,,,Bob Rep,5999,2025-02-01 09:00,2026-01-03 09:00
"""
    report = _round_trip(hubspot_home, ["contacts"], _write(tmp_path, "contacts.csv", body), "hubspot-contacts",
                         {"contacts": (2, 1)})
    assert _faults(report, "contacts") == [(4, "account_id", "unknown_reference")]
    claire = store("contacts", "7002")
    assert (claire["account_id"], claire["job_title"], claire["is_primary"]) == ("5002", "Buyer", False)


def test_hubspot_deals(hubspot_home, tmp_path, store):
    body = """Record ID,Deal Name,Pipeline,Deal Stage,Amount,Close Date,Create Date,Last Modified Date,Deal owner,Associated Company IDs,Deal Type,Closed Lost Reason
9001,Renewal 2026,Sales Pipeline,Appointment Scheduled,1200,2026-03-31 00:00,2025-12-01 10:00,2026-01-05 09:30,Ann Rep,5001,existingbusiness,
9002,New line,Sales Pipeline,Qualified To Buy,800,2026-04-30 00:00,2025-12-02 10:00,2026-01-05 09:30,Bob Rep,5002,newbusiness,
9003,Demo,Sales Pipeline,Presentation Scheduled,500,2026-04-30 00:00,2025-12-02 10:00,2026-01-05 09:30,Bob Rep,5002,newbusiness,
9004,Champion,Sales Pipeline,Decision Maker Bought-In,500,2026-04-30 00:00,2025-12-02 10:00,2026-01-05 09:30,Bob Rep,5002,newbusiness,
9005,Paper,Sales Pipeline,Contract Sent,700,2026-02-28 00:00,2025-11-02 10:00,2026-01-05 09:30,Ann Rep,5001,newbusiness,
9006,Signed,Sales Pipeline,Closed Won,2500,2026-01-04 00:00,2025-10-02 10:00,2026-01-05 09:30,Ann Rep,5001,newbusiness,
9007,Too dear,Sales Pipeline,Closed Lost,900,2026-01-03 00:00,2025-10-02 10:00,2026-01-05 09:30,Bob Rep,5002,newbusiness,price
9008,Two companies,Sales Pipeline,Contract Sent,900,2026-02-28 00:00,2025-11-02 10:00,2026-01-05 09:30,Ann Rep,5001;5002,newbusiness,
"""
    report = _round_trip(hubspot_home, ["opportunities"], _write(tmp_path, "deals.csv", body), "hubspot-deals",
                         {"opportunities": (7, 1)})
    assert _faults(report, "opportunities") == [(9, "account_id", "unknown_reference")]
    stages = {d: store("opportunities", d)["stage"] for d in ("9001", "9002", "9003", "9004", "9005", "9006", "9007")}
    assert stages == {"9001": "prospecting", "9002": "qualification", "9003": "proposal", "9004": "proposal",
                      "9005": "negotiation", "9006": "closed_won", "9007": "closed_lost"}
    lost = store("opportunities", "9007")
    assert (lost["lost_reason"], lost["expected_close_date"], lost["owner_user_id"]) == ("price", "2026-01-03", "Bob Rep")


# --- web shop -------------------------------------------------------------------------------------------------
SHOP = """Order Number,Order Date,Order Status,Currency,Customer ID,Customer Email,Customer Name,Billing City,Billing Country,Line Number,SKU,Product Name,Quantity,Unit Price,Discount Percent,Line Total
1001,2026-01-05 14:33:10,Completed,EUR,C-1,jana@example.test,Jana Novakova,Prague,CZ,1,SKU-1,Widget,2,10.00,0,20.00
1001,2026-01-05 14:33:10,Completed,EUR,C-1,jana@example.test,Jana Novakova,Prague,CZ,2,SKU-2,Gadget,1,5.00,10,4.50
1002,2026-01-06 09:00:00,Refunded,EUR,C-2,max@example.test,Max Muster,Hamburg,DE,1,SKU-1,Widget,1,10.00,0,10.00
1003,2026-01-07 10:00:00,Processing,EUR,C-1,jana@example.test,Jana Novakova,Prague,CZ,1,SKU-2,Gadget,0,5.00,0,0.00
"""
PRODUCTS = """product_id,sku,product_name,product_line,list_price,unit_cost,max_discount_pct,is_recurring,is_active,updated_at
SKU-1,SKU-1,Widget,Hardware,10,4,20,false,true,2026-01-01T00:00:00
SKU-2,SKU-2,Gadget,Hardware,5,2,20,false,true,2026-01-01T00:00:00
"""


def test_webshop_orders(home, tmp_path, store):
    from pipelines.lib.ingest import ingest_all

    import_file(home, ["products"], _write(tmp_path, "products.csv", PRODUCTS))
    report = _round_trip(home, ["accounts", "orders", "order_lines"], _write(tmp_path, "orders.csv", SHOP),
                         "webshop-orders", {"accounts": (2, 0), "orders": (3, 0), "order_lines": (3, 1)})
    assert _faults(report, "order_lines") == [(5, "quantity", "out_of_range")]
    jana = store("accounts", "C-1")
    assert (jana["account_type"], jana["source_system"], jana["country"], jana["updated_at"]) == (
        "B2C", "webshop", "CZ", "2026-01-05T14:33:10")  # collapsed: the first line's record

    ingest_all(home)
    with duckdb.connect(str(home.warehouse), read_only=True) as con:
        orders = con.sql("SELECT order_id, status, CAST(order_date AS VARCHAR) FROM raw.orders ORDER BY 1").fetchall()
        lines = con.sql("SELECT order_line_id, product_id, quantity, line_amount FROM raw.order_lines "
                        "ORDER BY 1").fetchall()
    assert orders == [("1001", "completed", "2026-01-05"), ("1002", "returned", "2026-01-06"),
                      ("1003", "completed", "2026-01-07")]
    assert lines == [("1001-1", "SKU-1", 2, 20.0), ("1001-2", "SKU-2", 1, 4.5), ("1002-1", "SKU-1", 1, 10.0)]
