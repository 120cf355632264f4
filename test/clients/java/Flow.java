// The documented loyalty flow through JDBC (test/scripts/clients.sh), with
// Debian's PostgreSQL JDBC driver.  Connects with the libpq environment
// (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE) to a database where the
// extension exists, prints one "ok ..." or "FAIL ..." line per check and
// exits 1 on any failure.
import java.math.BigDecimal;
import java.sql.*;
import java.time.LocalDate;
import java.time.OffsetDateTime;
import java.util.*;
import org.postgresql.PGConnection;
import org.postgresql.PGNotification;
import org.postgresql.util.PGInterval;
import org.postgresql.util.PGobject;

public class Flow {
    static int failures = 0;
    static Connection db;

    static void check(String what, boolean cond, Object detail) {
        System.out.println((cond ? "ok   " : "FAIL ") + what + (detail == null ? "" : ": " + detail));
        if (!cond) failures++;
    }

    static Connection connect(String... options) throws SQLException {
        String host = System.getenv().getOrDefault("PGHOST", "localhost");
        Properties p = new Properties();
        for (int i = 0; i + 1 < options.length; i += 2) p.setProperty(options[i], options[i + 1]);
        p.setProperty("user", System.getenv().getOrDefault("PGUSER", System.getProperty("user.name")));
        if (System.getenv("PGPASSWORD") != null) p.setProperty("password", System.getenv("PGPASSWORD"));
        return DriverManager.getConnection("jdbc:postgresql://" + (host.startsWith("/") ? "localhost" : host) + ":"
            + System.getenv().getOrDefault("PGPORT", "5432") + "/" + System.getenv("PGDATABASE"), p);
    }

    // the first column of the first row, each argument bound with setObject
    // (a Long as setLong would, a BigDecimal as setBigDecimal, ...)
    static ResultSet query(String sql, Object... args) throws SQLException {
        PreparedStatement ps = db.prepareStatement(sql);
        for (int i = 0; i < args.length; i++) ps.setObject(i + 1, args[i]);
        ResultSet rs = ps.executeQuery();
        rs.next();
        return rs;
    }
    static Object one(String sql, Object... args) throws SQLException { return query(sql, args).getObject(1); }

    // the SQLSTATE of the call's SQLException, or "none"
    static String sqlstate(String sql, Object... args) {
        try { one(sql, args); return "none"; } catch (SQLException e) { return e.getSQLState(); }
    }

    static String types(ResultSet rs) throws SQLException {
        StringJoiner j = new StringJoiner(", ");
        for (int i = 1; i <= rs.getMetaData().getColumnCount(); i++)
            j.add(rs.getMetaData().getColumnName(i) + " " + rs.getObject(i).getClass().getSimpleName());
        return j.toString();
    }

    static PGobject jsonb(String json) throws SQLException {
        PGobject o = new PGobject();
        o.setType("jsonb");
        o.setValue(json);
        return o;
    }

    public static void main(String[] argv) throws Exception {
        db = connect();
        String name = "jdbc";
        String sqlProgram = "SELECT loyalty.create_program(?, currency => ?, point_value => ?, earn_rate => ?,"
            + " expiry_period => ?, pending_period => ?)";
        String state = sqlstate(sqlProgram, name + " flow", "EUR", new BigDecimal("0.01"), 10, "1 year", "14 days");
        check("an interval as a String is refused (varchar has no implicit cast to interval)", state.equals("42883"), state);
        long program = (Long) one(sqlProgram, name + " flow", "EUR", new BigDecimal("0.01"), 10,
            new PGInterval("1 year"), new PGInterval("14 days"));
        long member = (Long) one("SELECT loyalty.enroll(?, ?, ?, region => ?, birthday => ?)",
            program, "pos", name + "-card-0042", "Lyon", LocalDate.of(1990, 4, 1));
        check("create_program (PGInterval) and enroll (LocalDate) return Long ids", true, program + " " + member);
        check("link_identity returns Boolean",
            Boolean.TRUE.equals(one("SELECT loyalty.link_identity(?, ?, ?)", member, "web", name + "-ana@example.org")), null);

        // how parameters arrive
        OffsetDateTime occurred = OffsetDateTime.now().minusHours(1);
        ResultSet rs = query("SELECT pg_typeof(?)::text, pg_typeof(?)::text, pg_typeof(?)::text, pg_typeof(?)::text,"
            + " pg_typeof(?)::text, pg_typeof(?)::text, pg_typeof(?)::text, pg_typeof(?)::text, pg_typeof(?)::text",
            5, 5L, new BigDecimal("23.40"), 9.99, "x", LocalDate.of(1990, 4, 1), occurred, new PGInterval("5 minutes"),
            jsonb("[]"));
        StringJoiner arrived = new StringJoiner(", ");
        for (int i = 1; i <= 9; i++) arrived.add(rs.getString(i));
        check("parameters arrive typed (Integer, Long, BigDecimal, Double, String, LocalDate, OffsetDateTime,"
            + " PGInterval, PGobject)", arrived.toString().equals("integer, bigint, numeric, double precision,"
            + " character varying, date, timestamp with time zone, interval, jsonb"), arrived);

        // earn: a BigDecimal amount; the points credited (bigint) come back as a Long
        rs = query("SELECT loyalty.earn(?, ?, channel => ?, reference => ?, idempotency_key => ?)",
            member, new BigDecimal("23.40"), "pos", "order-981", "pos-17:order-981");
        check("earn(BigDecimal 23.40) returns points: getObject a Long 234",
            Long.valueOf(234).equals(rs.getObject(1)), rs.getObject(1).getClass().getName() + " " + rs.getString(1));

        // lines: a PGobject of type jsonb (or json), or a String (below)
        String lines = "[{\"category\": \"books\", \"product\": \"B-1\", \"quantity\": 2, \"amount\": 30.00},"
            + " {\"category\": \"food\", \"product\": \"F-9\", \"quantity\": 1, \"amount\": 12.00}]";
        String sqlLines = "SELECT loyalty.earn(?, NULL, reference => ?, occurred_at => ?, lines => ?)";
        rs = query(sqlLines, member, "order-982", occurred, jsonb(lines));
        check("earn(lines => PGobject jsonb, occurred_at => OffsetDateTime)", rs.getLong(1) == 420, rs.getString(1));

        // award, redeem, hold, capture with long points; reverse by a BigDecimal amount
        long award = (Long) one("SELECT loyalty.award(?, ?, ?)", member, 500L, "welcome bonus");
        long redeem = (Long) one("SELECT loyalty.redeem(?, ?, channel => ?)", member, 50, "app");
        long hold = (Long) one("SELECT loyalty.hold(?, ?, ttl => ?)", member, 300L, new PGInterval("5 minutes"));
        long capture = (Long) one("SELECT loyalty.capture(?)", hold);
        check("award (Long)/redeem (Integer)/hold/capture return Long ids", true,
            award + " " + redeem + " " + hold + " " + capture);
        long entry = (Long) one("SELECT entry_id FROM loyalty.history(?) WHERE reference = ? AND kind = 'earn'",
            member, "order-981");
        rs = query("SELECT loyalty.reverse(?, ?, amount => ?)", member, entry, new BigDecimal("11.70"));
        check("reverse(amount => BigDecimal 11.70) takes back half", rs.getLong(1) == 117, rs.getString(1));

        rs = query("SELECT available, pending, held, as_of FROM loyalty.balance(?)", member);
        check("balance(): available 150, pending 537, held 0",
            rs.getLong("available") == 150 && rs.getLong("pending") == 537 && rs.getLong("held") == 0,
            rs.getString(1) + " " + rs.getString(2) + " " + rs.getString(3));
        check("balance() types (getObject)", types(rs).equals("available Long, pending Long, held Long,"
            + " as_of Timestamp") && rs.getObject("as_of", OffsetDateTime.class) != null, types(rs));

        rs = db.createStatement().executeQuery("SELECT entry_id, kind, points, amount, created_at, details"
            + " FROM loyalty.history(" + member + ") WHERE details IS NOT NULL AND kind = 'earn'");
        rs.next();
        check("history() types (bigint, text, bigint, numeric, timestamptz, jsonb)", types(rs).equals(
            "entry_id Long, kind String, points Long, amount BigDecimal, created_at Timestamp, details PGobject")
            && rs.getBigDecimal("amount").compareTo(new BigDecimal("42")) == 0, types(rs));

        rs = query("SELECT members, points_outstanding, liability FROM loyalty.kpi_summary WHERE program_id = ?", program);
        check("kpi_summary: members (Long), points_outstanding and liability (BigDecimal)", rs.getLong("members") == 1
            && types(rs).equals("members Long, points_outstanding BigDecimal, liability BigDecimal"), types(rs));
        rs = query("SELECT frequency, monetary, first_purchase, segment FROM loyalty.member_rfm WHERE member_id = ?", member);
        check("member_rfm: frequency (Long), monetary (BigDecimal), first_purchase (Date), segment", types(rs).equals(
            "frequency Long, monetary BigDecimal, first_purchase Date, segment String"), types(rs));

        // events: LISTEN on a second connection, earn, receive the NOTIFY
        try (Connection listener = connect()) {
            listener.createStatement().execute("LISTEN loyalty_events");
            one("SELECT loyalty.earn(?, ?, reference => ?)", member, new BigDecimal("5.00"), "order-983");
            PGNotification[] got = listener.unwrap(PGConnection.class).getNotifications(10000);
            String payload = got == null || got.length == 0 ? null : got[0].getParameter();
            check("LISTEN loyalty_events receives points.earned", payload != null
                && payload.contains("\"points.earned\"") && payload.contains("\"member_id\": " + member), payload);
        }

        // a double amount is bound as double precision, which the float overloads take,
        // reading it to 15 significant digits
        rs = query("SELECT loyalty.earn(?, ?, reference => ?)", member, 9.99, "order-984");
        check("a double amount (setDouble 9.99) earns", rs.getLong(1) == 99, rs.getString(1));
        Object amount = one("SELECT amount FROM loyalty.history(?) WHERE reference = ?", member, "order-984");
        check("...and is recorded as BigDecimal 9.99", new BigDecimal("9.99").equals(amount), String.valueOf(amount));

        // lines as a String: bound as varchar, parsed as JSON
        rs = query(sqlLines, member, "order-982s", occurred, lines);
        check("earn(lines => String)", rs.getLong(1) == 420, rs.getString(1));

        // with stringtype=unspecified a String goes untyped, and the server reads it as JSON too
        try (Connection untyped = connect("stringtype", "unspecified")) {
            PreparedStatement ps = untyped.prepareStatement(sqlLines);
            ps.setLong(1, member);
            ps.setString(2, "order-985");
            ps.setObject(3, occurred);
            ps.setString(4, lines);
            rs = ps.executeQuery();
            check("lines as a String with stringtype=unspecified", rs.next() && rs.getLong(1) == 420, rs.getString(1));
        }

        // errors: the SQLSTATE is SQLException.getSQLState()
        try {
            one("SELECT loyalty.redeem(?, ?)", member, 1000000L);
            check("redeem beyond the balance raises LY001", false, "no error");
        } catch (SQLException e) {
            check("redeem beyond the balance raises LY001", "LY001".equals(e.getSQLState()),
                e.getClass().getSimpleName() + " " + e.getSQLState());
        }
        String sqlKeyed = "SELECT loyalty.award(?, ?, ?, idempotency_key => ?)";
        Object first = one(sqlKeyed, member, 10L, "dup", name + "-k"), again = one(sqlKeyed, member, 10L, "dup", name + "-k");
        check("a replay returns the first entry", first.equals(again), first + " " + again);
        state = sqlstate(sqlKeyed, member, 20L, "dup", name + "-k");
        check("a key reused with other points raises LY002", state.equals("LY002"), state);

        // a transfer (Long and BigDecimal points), a profile update (LocalDate, jsonb), a membership
        long friend = (Long) one("SELECT loyalty.enroll(?, ?, ?)", program, "app", name + "-friend");
        one("SELECT loyalty.set_transfer_rules(?, max_points => ?)", program, 100);
        Object sent = one("SELECT loyalty.transfer(?, ?, ?, ?)", member, friend, 7L, "a gift");
        Object sent2 = one("SELECT loyalty.transfer(?, ?, ?)", member, friend, new BigDecimal("3"));
        check("transfer() with Long and BigDecimal points returns Long entries",
            sent instanceof Long && sent2 instanceof Long, sent + " " + sent2);
        Object friendHas = one("SELECT available FROM loyalty.balance(?)", friend);
        check("the friend has 10", Long.valueOf(10).equals(friendHas), String.valueOf(friendHas));
        Object changed = one("SELECT loyalty.update_member(?, birthday => ?, consent => ?)",
            friend, LocalDate.of(1990, 4, 1), jsonb("{\"email\": true}"));
        check("update_member(LocalDate, jsonb) changes two fields", Integer.valueOf(2).equals(changed), String.valueOf(changed));
        one("SELECT loyalty.create_plan(?, ?, ?, ?, ?)", program, "PLUS", "Plus", new BigDecimal("4.99"), "month");
        Object sub = one("SELECT loyalty.subscribe(?, ?, ?)", friend, "PLUS", name + "-pay-1");
        check("subscribe() returns a Long id", sub instanceof Long, String.valueOf(sub));

        check("verify() finds nothing", !db.createStatement().executeQuery("SELECT * FROM loyalty.verify()").next(), null);
        db.close();
        System.exit(failures == 0 ? 0 : 1);
    }
}
