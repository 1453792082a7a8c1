// Runs SQL statements against the local Spark Connect server and prints the rows.
// Used by `cluster spark-sql` and by `cluster up` as Spark's readiness check.
// Run with the spark-client classpath (java source-launcher mode, no build step):
//   java -cp '<work>/lib/spark-client/*' SparkSql.java [--remote sc://host:port] 'SQL' ['SQL' ...]
// Output: for each statement that returns columns, a tab-separated header line and rows.
import java.util.ArrayList;
import java.util.List;

import org.apache.spark.sql.Row;
import org.apache.spark.sql.connect.SparkSession;

public class SparkSql {
    public static void main(String[] args) {
        String remote = System.getenv().getOrDefault("SPARK_REMOTE", "sc://127.0.0.1:15002");
        List<String> statements = new ArrayList<>();
        for (int i = 0; i < args.length; i++) {
            if (args[i].equals("--remote") && i + 1 < args.length) {
                remote = args[++i];
            } else {
                statements.add(args[i]);
            }
        }
        if (statements.isEmpty()) {
            System.err.println("usage: SparkSql [--remote sc://host:port] 'SQL' ['SQL' ...]");
            System.exit(2);
        }
        SparkSession spark = SparkSession.builder().remote(remote).getOrCreate();
        try {
            for (String sql : statements) {
                var df = spark.sql(sql);
                String[] columns = df.schema().fieldNames();
                // DDL and INSERT return no columns: nothing to print.
                if (columns.length == 0) {
                    df.collectAsList();
                    continue;
                }
                System.out.println(String.join("\t", columns));
                for (Row row : df.collectAsList()) {
                    StringBuilder line = new StringBuilder();
                    for (int c = 0; c < row.length(); c++) {
                        if (c > 0) line.append('\t');
                        line.append(row.isNullAt(c) ? "NULL" : String.valueOf(row.get(c)));
                    }
                    System.out.println(line);
                }
            }
        } finally {
            spark.close();
        }
    }
}
