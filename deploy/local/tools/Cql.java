// A minimal cqlsh stand-in: runs CQL statements against the local Cassandra and prints rows.
// Used by `cluster cql`. Runs on the Cassandra classpath, which already holds the DataStax
// Java driver 3.x (java source-launcher mode, no build step):
//   java -cp '<work>/lib/cassandra/*' Cql.java [--host H] [--port P] 'CQL;' ['CQL;' ...]
// Output: for each statement that returns rows, a tab-separated header line and rows.
import java.util.ArrayList;
import java.util.List;

import com.datastax.driver.core.Cluster;
import com.datastax.driver.core.ColumnDefinitions;
import com.datastax.driver.core.ResultSet;
import com.datastax.driver.core.Row;
import com.datastax.driver.core.Session;

public class Cql {
    public static void main(String[] args) {
        String host = "127.0.0.1";
        int port = 9042;
        List<String> statements = new ArrayList<>();
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--host" -> host = args[++i];
                case "--port" -> port = Integer.parseInt(args[++i]);
                default -> statements.add(args[i]);
            }
        }
        if (statements.isEmpty()) {
            System.err.println("usage: Cql [--host H] [--port P] 'CQL' ['CQL' ...]");
            System.exit(2);
        }
        // No JMX reporting: the driver's metrics need extra dependencies and are not wanted here.
        try (Cluster cluster = Cluster.builder().addContactPoint(host).withPort(port)
                .withoutJMXReporting().build();
             Session session = cluster.connect()) {
            for (String cql : statements) {
                ResultSet rs = session.execute(cql);
                ColumnDefinitions defs = rs.getColumnDefinitions();
                if (defs.size() == 0) continue;
                List<String> names = new ArrayList<>();
                for (ColumnDefinitions.Definition d : defs) names.add(d.getName());
                System.out.println(String.join("\t", names));
                for (Row row : rs) {
                    StringBuilder line = new StringBuilder();
                    for (int c = 0; c < defs.size(); c++) {
                        if (c > 0) line.append('\t');
                        Object v = row.getObject(c);
                        line.append(v == null ? "NULL" : v.toString());
                    }
                    System.out.println(line);
                }
            }
        }
    }
}
