import datetime as dt
from pmo.accounts.models import Role
from tests.conftest import CITY_A, PREF_X
from tests.delays.factories import national_plans

def test_smoke(client, auth, db_session):
    national_plans(db_session, limit=300)
    db_session.commit()
    auth.login(role=Role.MINISTRY_OFFICER)
    for url in ["/reports/national?as_of=2015-12-01", "/reports/prefectures/01?as_of=2015-12-01", f"/delays/bodies/{CITY_A}?as_of=2015-12-01",
                "/delays/cases", "/delays/vendors?vendor=北斗システム&as_of=2015-12-01", "/reports/steering?as_of=2015-12-01",
                "/reports/steering.xlsx?as_of=2015-12-01", "/reports/export/followup.csv?as_of=2015-12-01", "/reports/export/heatmap.xlsx?as_of=2015-12-01",
                f"/delays/cases/new?body={CITY_A}&body=012025&as_of=2015-12-01", "/", "/api/v1/openapi.json"]:
        r = client.get(url)
        print(url, r.status_code, len(r.data))
        assert r.status_code == 200, r.get_data(as_text=True)[:3000]
